// #/bulletin: the weekly bulletin (周通报) of a county or township, from GET /v1/bulletin: the same
// numbers as the printable page (/v1/bulletin.html) and the ranking spreadsheet
// (/v1/bulletin.xlsx), which this screen downloads. The period is an ISO week (2026-W48).

import { api, download, query as qs } from "../api.js";
import { h, put } from "../dom.js";
import { formatScore, formatTime, t, typeName } from "../i18n.js";
import { href } from "../router.js";
import { errorBox, field, heading, loading } from "./common.js";
import { photoWithBoxes } from "./photo.js";
import { knownRegions } from "./ledger.js";

/** This week as an ISO week (2026-W48), from the browser's calendar. */
function thisWeek() {
  const now = new Date();
  const day = new Date(Date.UTC(now.getFullYear(), now.getMonth(), now.getDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday); // the week's Thursday decides its year
  const first = new Date(Date.UTC(day.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((day - first) / 86400000 + 1) / 7);
  return `${day.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}

function form(query, regions) {
  const element = h(
    "form",
    { class: "filters bulletin-form", role: "search", "aria-label": t("bulletinChoose") },
    field("period", t("bulletinPeriod"), { type: "week", value: query.period || thisWeek(), required: true }),
    field("region", t("region"), { value: query.region || "", list: "bulletin-regions", required: true, autocomplete: "off" }),
    h("datalist", { id: "bulletin-regions" }, regions.map((r) => h("option", { value: r }))),
    field("township", t("bulletinTownship"), { value: query.township || "", autocomplete: "off" }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("bulletinShow"))),
  );
  element.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(element);
    const pick = (k) => String(data.get(k) || "").trim();
    location.hash = href("/bulletin", { period: pick("period"), region: pick("region"), township: pick("township") });
  });
  return element;
}

const findingLink = (id) => h("a", { href: href(`/findings/${id}`) }, `#${id}`);
const place = (i) => [i.township, i.village].filter(Boolean).join(" · ") || "–";

function table(id, headers, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { id }, h("thead", {}, h("tr", {}, headers.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)),
  );
}

function newSection(b) {
  const types = Object.keys(b.new_by_type);
  const lead = h("p", { class: "lead" }, t("bulletinNew", { n: b.new_total }), b.awaiting_review ? ` ${t("bulletinAwaiting", { n: b.awaiting_review })}` : "");
  if (!types.length) return [lead];
  const rows = b.new_by_township.map((r) => h("tr", { dataset: { township: r.township ?? "" } }, h("td", {}, r.township ?? t("bulletinNoTownship")), types.map((k) => h("td", { class: "num" }, r.by_type[k] || 0)), h("td", { class: "num" }, r.total)));
  return [lead, table("bulletin-new", [t("township"), ...types.map(typeName), t("bulletinTotal")], rows)];
}

function itemTable(id, items, withAt, zone) {
  if (!items.length) return null;
  const headers = [t("id"), t("type"), t("place"), t("deadline"), ...(withAt ? [t("bulletinRectifiedAt")] : [])];
  return table(id, headers, items.map((i) => h("tr", {}, h("td", {}, findingLink(i.finding_id)), h("td", {}, typeName(i.type)), h("td", {}, place(i)), h("td", {}, i.deadline || "–"), withAt ? h("td", {}, formatTime(i.at, zone)) : null)));
}

function rectificationSection(b) {
  return [
    h("p", { class: "lead", id: "bulletin-rectification", dataset: { onTime: b.rectified_on_time, late: b.rectified_late, overdue: b.still_overdue } }, t("bulletinRectified", { o: b.rectified_on_time, l: b.rectified_late, d: b.still_overdue })),
    b.late.length ? h("h3", {}, t("bulletinLateList")) : null,
    itemTable("bulletin-late", b.late, true, b.timezone),
    b.overdue.length ? h("h3", {}, t("bulletinOverdueList")) : null,
    itemTable("bulletin-overdue", b.overdue, false, b.timezone),
  ];
}

function recurrenceSection(b) {
  const zone = b.timezone;
  const lead = h("p", { class: "lead" }, t("bulletinRecurrences", { n: b.recurrences.length }));
  if (!b.recurrences.length) return [lead];
  const rows = b.recurrences.map((i) => h("tr", {}, h("td", {}, findingLink(i.finding_id)), h("td", {}, typeName(i.type)), h("td", {}, place(i)), h("td", {}, formatTime(i.at, zone)), h("td", {}, findingLink(i.recurrence_of))));
  return [lead, table("bulletin-recurrences", [t("id"), t("type"), t("place"), t("observed"), t("recurrenceOf")], rows)];
}

function change(r) {
  if (r.change === null) return h("span", {}, t("bulletinNewlyRanked"));
  if (r.change > 0) return h("span", { class: "up" }, `↑${r.change}`);
  if (r.change < 0) return h("span", { class: "down" }, `↓${-r.change}`);
  return h("span", {}, "–");
}

function rankingSection(b) {
  if (!b.ranking.length) return [h("p", { class: "muted" }, t("bulletinNoRanking"))];
  const headers = [t("rank"), t("township"), t("rankScore"), t("rankChange"), t("rankProblems"), t("rankVillages"), t("rankPerVillage"), t("rankOnTime"), t("rankLate"), t("rankOverdue"), t("rankRate"), t("rankRecurrences")];
  const rows = b.ranking.map((r) => h(
    "tr",
    { class: r.township === b.township ? "mine" : null, dataset: { township: r.township, rank: r.rank, score: r.score } },
    h("td", { class: "num" }, r.rank), h("td", {}, r.township), h("td", { class: "num" }, r.score.toFixed(2)), h("td", {}, change(r)),
    h("td", { class: "num" }, r.problems), h("td", { class: "num" }, r.villages), h("td", { class: "num" }, r.problems_per_village.toFixed(2)),
    h("td", { class: "num" }, r.on_time), h("td", { class: "num" }, r.late), h("td", { class: "num" }, r.overdue),
    h("td", { class: "num" }, `${(r.on_time_rate * 100).toFixed(1)}%`), h("td", { class: "num" }, r.recurrences),
  ));
  const w = b.weights;
  return [table("bulletin-ranking", headers, rows), h("p", { class: "muted small" }, t("rankFormula", { a: w.on_time_rate, b: w.problems_per_village, c: w.overdue, d: w.recurrences }))];
}

async function photosSection(b) {
  const zone = b.timezone;
  if (!b.photos.length) return [h("p", { class: "muted" }, t("bulletinNoPhotos"))];
  const sizes = await Promise.all(b.photos.map((p) => api(`/v1/images/${p.image_id}`)));
  return [h("div", { class: "bulletin-photos" }, b.photos.map((p, i) => photoWithBoxes(p.image_id, sizes[i].width, sizes[i].height, [p], `${t("photo")} #${p.image_id}`, h("span", {}, findingLink(p.finding_id), ` ${typeName(p.type)} ${formatScore(p.score)} · ${place(p)} · ${formatTime(p.observed_at, zone)}`))))];
}

function section(id, title, content) {
  return h("section", { class: "card bulletin-section", "aria-labelledby": id }, h("h2", { id }, title), content);
}

export async function bulletinView(main, { query }) {
  put(main, heading(t("bulletinTitle")), loading());
  let regions = [];
  try {
    regions = await knownRegions();
  } catch (error) {
    put(main, heading(t("bulletinTitle")), errorBox(error));
    return;
  }
  const chooser = form(query, regions);
  if (!query.region) {
    put(main, heading(t("bulletinTitle")), chooser, h("p", { class: "muted" }, t("bulletinPick")));
    return;
  }
  const params = { period: query.period || thisWeek(), region: query.region, township: query.township };
  try {
    const b = await api(`/v1/bulletin${qs(params)}`);
    const name = `bulletin-${b.period}-${b.region}${b.township ? `-${b.township}` : ""}`;
    const fail = (e) => main.append(errorBox(e));
    const tools = h(
      "div",
      { class: "toolbar" },
      h("p", { class: "count", id: "bulletin-meta" }, t("bulletinMeta", { first: b.first_day, last: b.last_day, zone: b.timezone, asOf: formatTime(b.as_of, b.timezone) })),
      h("div", { class: "actions" },
        h("button", { type: "button", id: "bulletin-html", onclick: () => download(`/v1/bulletin.html${qs(params)}`, `${name}.html`).catch(fail) }, t("bulletinPrintable")),
        h("button", { type: "button", id: "bulletin-xlsx", onclick: () => download(`/v1/bulletin.xlsx${qs(params)}`, `${name}.xlsx`).catch(fail) }, t("exportXlsx"))),
    );
    const title = `${t("bulletinTitle")} · ${b.region}${b.township || ""} · ${b.period}`;
    if (b.empty) {
      put(main, heading(title), chooser, tools, h("p", { class: "card empty", id: "bulletin-empty" }, t("bulletinEmpty")), b.ranking.length ? section("s-rank", t("bulletinRanking"), rankingSection(b)) : null);
      return;
    }
    put(
      main,
      heading(title),
      chooser,
      tools,
      section("s-new", t("bulletinNewTitle"), newSection(b)),
      section("s-rect", t("bulletinRectTitle"), rectificationSection(b)),
      section("s-rec", t("bulletinRecTitle"), recurrenceSection(b)),
      section("s-rank", t("bulletinRanking"), rankingSection(b)),
      section("s-photos", t("bulletinPhotos"), await photosSection(b)),
    );
  } catch (error) {
    put(main, heading(t("bulletinTitle")), chooser, errorBox(error));
  }
}
