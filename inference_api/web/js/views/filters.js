// The filter bar shared by the ledger, the map and the summary: type, status, region, dates.
// Its values live in the page's link (#/findings?type=burning&from=2024-05-01), and are turned
// into the API's parameters here, dates as local midnight to the end of the day.

import { h } from "../dom.js";
import { problemTypes, STATUSES, statusName, t, typeName } from "../i18n.js";
import { go } from "../router.js";
import { field, select } from "./common.js";

export const FILTER_KEYS = ["type", "status", "region", "from", "to", "inspection_id", "overdue", "recurrence"];
const FORM_KEYS = ["type", "status", "region", "from", "to", "overdue", "recurrence"];

function localIso(date, endOfDay) {
  const [y, m, d] = date.split("-").map(Number);
  const when = endOfDay ? new Date(y, m - 1, d, 23, 59, 59, 999) : new Date(y, m - 1, d);
  return Number.isNaN(when.getTime()) ? undefined : when.toISOString();
}

/** The API query parameters (type, status, region, from, to, inspection_id) for the page's `query`. */
export function apiFilters(query) {
  return {
    type: query.type,
    status: query.status,
    region: query.region,
    from: query.from ? localIso(query.from, false) : undefined,
    to: query.to ? localIso(query.to, true) : undefined,
    inspection_id: query.inspection_id,
    overdue: query.overdue === "true" ? "true" : undefined,
    recurrence: query.recurrence === "true" ? "true" : undefined,
  };
}

/** The filter form for the view at `path`; submitting it navigates there with the new filters. */
export function filterForm(path, query, regions = []) {
  const types = [["", t("all")], ...problemTypes().map((p) => [p.key, typeName(p.key)])];
  const statuses = [["", t("all")], ...STATUSES.map((s) => [s, statusName(s)])];
  const regionList = h("datalist", { id: "region-options" }, regions.map((r) => h("option", { value: r })));
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": t("filters") },
    select("type", t("type"), types, query.type),
    select("status", t("status"), statuses, query.status),
    field("region", t("region"), { value: query.region || "", list: "region-options", autocomplete: "off" }),
    regionList,
    field("from", t("from"), { type: "date", value: query.from || "" }),
    field("to", t("to"), { type: "date", value: query.to || "" }),
    select("overdue", t("filterOverdue"), [["", t("all")], ["true", t("yes")]], query.overdue),
    select("recurrence", t("filterRecurrence"), [["", t("all")], ["true", t("yes")]], query.recurrence),
    query.inspection_id ? h("p", { class: "chip" }, t("inspectionFilter", { id: query.inspection_id })) : null,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary" }, t("apply")),
      h("button", { type: "button", onclick: () => go(path, { sort: query.sort }) }, t("reset")),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = Object.fromEntries(FORM_KEYS.map((k) => [k, String(data.get(k) || "").trim()]));
    go(path, { ...next, inspection_id: query.inspection_id, sort: query.sort });
  });
  return form;
}
