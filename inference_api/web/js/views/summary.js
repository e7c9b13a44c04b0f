// #/summary: per region, counts by type and by status, how many were rectified and the median
// days from raised to rectified, with the same filters as the ledger; CSV from the server
// (/v1/findings/summary.csv), so the spreadsheet and the page show the same numbers.

import { api, download, query as qs } from "../api.js";
import { h, put } from "../dom.js";
import { problemTypes, STATUSES, statusName, t, typeName } from "../i18n.js";
import { href } from "../router.js";
import { errorBox, heading, loading } from "./common.js";
import { apiFilters, filterForm } from "./filters.js";

/** A labelled bar list: [[label, count, link, cssClass]] with bars relative to `total`. */
function bars(title, entries, total) {
  return h(
    "div",
    { class: "bars" },
    h("h3", {}, title),
    h("ul", {}, entries.map(([label, n, link, css]) => {
      const bar = h("span", { class: `bar ${css}`, "aria-hidden": "true" });
      bar.style.width = `${total ? Math.round((n / total) * 100) : 0}%`;
      return h("li", {}, h("span", { class: "bar-label" }, n ? h("a", { href: link }, label) : label), h("span", { class: "bar-track" }, bar), h("span", { class: "num" }, n));
    })),
  );
}

function rectifiedLine(entry) {
  const median = entry.median_days_to_rectified;
  return h(
    "p",
    { class: "rectified", dataset: { rectified: entry.rectified, medianDays: median ?? "" } },
    t("rectifiedCount", { n: entry.rectified }),
    " · ",
    median === null ? t("noMedian") : t("medianDays", { d: median.toFixed(1) }),
    " · ",
    h("span", { class: entry.overdue ? "overdue-count" : "", dataset: { overdue: entry.overdue } }, t("overdueCount", { n: entry.overdue })),
    " · ",
    h("span", { dataset: { late: entry.rectified_late } }, t("lateCount", { n: entry.rectified_late })),
  );
}

function regionCard(entry, query) {
  const name = entry.region ?? t("noRegion");
  const link = (extra) => href("/findings", { ...query, region: entry.region ?? undefined, ...extra });
  return h(
    "article",
    { class: "card region", dataset: { region: entry.region ?? "" } },
    h("h2", {}, name, " ", h("span", { class: "muted" }, t("findingsCount", { n: entry.total }))),
    rectifiedLine(entry),
    h(
      "div",
      { class: "bar-grid" },
      bars(t("byType"), problemTypes().filter((p) => p.detectable || entry.by_type[p.key]).map((p) => [typeName(p.key), entry.by_type[p.key] || 0, link({ type: p.key }), `t-${p.key}`]), entry.total),
      bars(t("byStatus"), STATUSES.map((st) => [statusName(st), entry.by_status[st] || 0, link({ status: st }), `s-${st}`]), entry.total),
    ),
  );
}

export async function summaryView(main, { query }) {
  put(main, heading(t("summaryTitle")), loading());
  const filters = apiFilters(query);
  try {
    const summary = await api(`/v1/findings/summary${qs(filters)}`);
    const exporter = (kind) => () => download(`/v1/findings/summary.${kind}${qs(filters)}`, `findings-summary.${kind}`).catch((e) => main.append(errorBox(e)));
    const exportButton = h("div", { class: "actions" }, h("button", { type: "button", id: "summary-csv", onclick: exporter("csv") }, t("exportCsv")), h("button", { type: "button", id: "summary-xlsx", onclick: exporter("xlsx") }, t("exportXlsx")));
    put(
      main,
      heading(t("summaryTitle")),
      filterForm("/summary", query, summary.regions.map((r) => r.region).filter(Boolean)),
      h("div", { class: "toolbar" }, h("div", { class: "overall" }, h("strong", {}, t("allRegions")), " ", t("findingsCount", { n: summary.total }), " · ", rectifiedLine(summary)), exportButton),
      summary.regions.length ? h("div", { class: "regions" }, summary.regions.map((r) => regionCard(r, query))) : h("p", { class: "muted" }, t("none")),
    );
  } catch (error) {
    put(main, heading(t("summaryTitle")), errorBox(error));
  }
}
