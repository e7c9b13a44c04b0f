// #/findings: the ledger of candidate and reviewed findings. Filtering, sorting and paging are
// the API's (`GET /v1/findings?sort=-score&limit=25&offset=25`): the page asks for the 25 rows it
// shows, however many findings match.

import { api, download, query as qs } from "../api.js";
import { h, put } from "../dom.js";
import { formatScore, formatTime, t, typeName } from "../i18n.js";
import { href } from "../router.js";
import { deadlineMarks, errorBox, heading, loading, pager, statusBadge } from "./common.js";
import { apiFilters, filterForm } from "./filters.js";

const PAGE_SIZE = 25;
const DEFAULT_SORT = "-id";

/** Columns, each with the API's sort field (place sorts by region, township, village). */
const COLUMNS = [
  { key: "id", label: "id" },
  { key: "type", label: "type" },
  { key: "score", label: "score" },
  { key: "status", label: "status" },
  { key: "region", label: "place" },
  { key: "observed_at", label: "observed" },
];

/** The link's sort if it names a column (an old or hand-edited link may not), else newest first. */
function sortOf(query) {
  const sort = query.sort || DEFAULT_SORT;
  return COLUMNS.some((c) => c.key === sort.replace(/^-/, "")) ? sort : DEFAULT_SORT;
}

/** Region names known to the ledger, for the region filter's suggestions. */
export async function knownRegions() {
  const summary = await api("/v1/findings/summary");
  return summary.regions.map((r) => r.region).filter(Boolean);
}

function headerCell(column, query) {
  const sort = sortOf(query);
  const active = sort.replace(/^-/, "") === column.key;
  const desc = sort.startsWith("-");
  const next = active && !desc ? `-${column.key}` : column.key;
  return h(
    "th",
    { scope: "col", "aria-sort": active ? (desc ? "descending" : "ascending") : "none" },
    h("a", { href: href("/findings", { ...query, sort: next, page: 1 }), class: "sort", "aria-label": t("sortBy", { col: t(column.label) }) },
      t(column.label), h("span", { "aria-hidden": "true" }, active ? (desc ? " ▼" : " ▲") : "")),
  );
}

function row(f) {
  return h(
    "tr",
    { dataset: { findingId: f.id, status: f.status } },
    h("td", {}, h("a", { href: href(`/findings/${f.id}`) }, `#${f.id}`)),
    h("td", {}, h("span", { class: `swatch t-${f.type}`, "aria-hidden": "true" }), typeName(f.type)),
    h("td", { class: "num" }, formatScore(f.score)),
    h("td", {}, statusBadge(f.status), deadlineMarks(f)),
    h("td", {}, [f.region, f.township, f.village].filter(Boolean).join(" · ") || "–"),
    h("td", {}, formatTime(f.observed_at)),
  );
}

export async function ledgerView(main, { query }) {
  put(main, heading(t("ledgerTitle")), loading());
  const filters = apiFilters(query);
  const asked = Math.max(1, Math.floor(Number(query.page)) || 1);
  const list = (page) => api(`/v1/findings${qs({ ...filters, sort: sortOf(query), limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE })}`);
  try {
    const [first, regions] = await Promise.all([list(asked), knownRegions()]);
    const { total } = first;
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const page = Math.min(asked, pages);
    // A link past the last page (findings closed since it was made) shows the last page.
    const shown = page === asked ? first.items : (await list(page)).items;
    const exporter = (kind) => () => download(`/v1/findings.${kind}${qs({ ...filters, sort: sortOf(query) })}`, `findings.${kind}`).catch((e) => main.append(errorBox(e)));
    const exportButton = h("div", { class: "actions" }, h("button", { type: "button", onclick: exporter("csv") }, t("exportCsv")), h("button", { type: "button", id: "ledger-xlsx", onclick: exporter("xlsx") }, t("exportXlsx")));
    put(
      main,
      heading(t("ledgerTitle")),
      filterForm("/findings", query, regions),
      h("div", { class: "toolbar" }, h("p", { class: "count", id: "ledger-count", dataset: { total } }, t("total", { n: total })), exportButton),
      shown.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "ledger" }, h("caption", { class: "visually-hidden" }, t("ledgerTitle")), h("thead", {}, h("tr", {}, COLUMNS.map((c) => headerCell(c, query)))), h("tbody", {}, shown.map(row))))
        : h("p", { class: "muted" }, t("none")),
      total > PAGE_SIZE ? pager("/findings", query, page, pages) : null,
    );
  } catch (error) {
    put(main, heading(t("ledgerTitle")), errorBox(error));
  }
}
