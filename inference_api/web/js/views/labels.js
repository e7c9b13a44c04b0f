// #/labels: what inspectors' reviews and boxes have produced for training (docs/reviews.md):
// per problem type the boxes, negatives and photos; the exports (YOLO zip, Label Studio tasks)
// and, for keys that write, a Label Studio import; and every label, filtered by type and source,
// 25 a page, each linked to its photo (where it can be edited) and to the finding it corrects.

import { api, download, query as qs } from "../api.js";
import { announce, h, put } from "../dom.js";
import { formatTime, problemTypes, t, typeNames } from "../i18n.js";
import { go, href } from "../router.js";
import { canWrite } from "../session.js";
import { errorBox, field, heading, loading, pager, select } from "./common.js";
import { boxText } from "./labeller.js";
import { learningSections } from "./photolabels.js";

const PAGE_SIZE = 25;
const SOURCES = ["manual", "correction", "label_studio"];

function names(type) {
  const n = typeNames(type);
  return h("span", {}, h("span", { class: `swatch t-${type}`, "aria-hidden": "true" }), h("span", { lang: "zh-CN" }, n.zh), " / ", h("span", { lang: "en" }, n.en));
}

function perType(summary) {
  const detectable = Object.fromEntries(problemTypes().map((p) => [p.key, p.detectable]));
  return h(
    "section",
    { "aria-labelledby": "per-type-h" },
    h("h2", { id: "per-type-h" }, t("labelsPerType")),
    h("p", { class: "muted", id: "reviewed-images", dataset: { n: summary.reviewed_images } }, t("reviewedImages", { n: summary.reviewed_images })),
    h("div", { class: "table-wrap" }, h(
      "table",
      { class: "label-counts" },
      h("thead", {}, h("tr", {}, [t("type"), t("detectable"), t("positives"), t("hardNegatives"), t("photosCount")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, summary.types.map((c) => h(
        "tr",
        { dataset: { type: c.type, positives: c.positives } },
        h("td", {}, names(c.type)),
        h("td", {}, t(detectable[c.type] ? "typesDetectable" : "typesNotDetectable")),
        h("td", { class: "num" }, c.positives),
        h("td", { class: "num" }, c.hard_negatives),
        h("td", { class: "num" }, c.images),
      ))),
    )),
  );
}

function importForm() {
  const message = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "import-form" },
    field("ls-file", t("importFile"), { type: "file", accept: ".json,application/json", required: true }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("importSubmit"))),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements["ls-file"].files[0];
    if (!file) return;
    let tasks;
    try {
      tasks = JSON.parse(await file.text());
    } catch {
      put(message, h("p", { class: "error", role: "alert" }, t("importBadFile")));
      return;
    }
    try {
      const done = await api("/v1/labels/import/label-studio", { method: "POST", json: tasks });
      const text = t("importResult", { c: done.created, u: done.updated, n: done.unchanged, s: done.skipped.length });
      const counts = { created: done.created, updated: done.updated, unchanged: done.unchanged, skipped: done.skipped.length };
      put(message, h("p", { class: "ok", id: "import-result", dataset: counts }, text), done.skipped.length ? h("ul", {}, done.skipped.map((s) => h("li", {}, `${s.task}: ${s.reason}`))) : null);
      announce(text);
    } catch (error) {
      put(message, errorBox(error));
    }
  });
  return form;
}

function exportsSection(main) {
  const prefix = field("image-prefix", t("imagePrefix"), { maxlength: 500, autocomplete: "off", placeholder: "/data/local-files/?d=envwatch-reviews/" });
  const fail = (error) => main.append(errorBox(error));
  const yolo = h("button", { type: "button", id: "export-yolo", onclick: () => download("/v1/labels/export/yolo", "envwatch-reviews.zip").catch(fail) }, t("exportYolo"));
  const studio = h("button", { type: "button", id: "export-label-studio", onclick: () => download(`/v1/labels/export/label-studio${qs({ image_prefix: prefix.querySelector("input").value.trim() })}`, "envwatch-label-studio.json").catch(fail) }, t("exportLabelStudio"));
  return h(
    "section",
    { class: "exports card", "aria-labelledby": "exports-h" },
    h("h2", { id: "exports-h" }, t("exportsTitle")),
    h("div", { class: "actions" }, yolo),
    prefix,
    h("div", { class: "actions" }, studio),
    canWrite() ? importForm() : null,
  );
}

function filters(query) {
  const types = [["", t("all")], ...problemTypes().map((p) => [p.key, `${typeNames(p.key).zh} / ${typeNames(p.key).en}`])];
  const sources = [["", t("all")], ...SOURCES.map((s) => [s, t(`source_${s}`)])];
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": t("filters") },
    select("type", t("type"), types, query.type),
    select("source", t("source"), sources, query.source),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("apply")), h("button", { type: "button", onclick: () => go("/labels") }, t("reset"))),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    go("/labels", { type: data.get("type"), source: data.get("source") });
  });
  return form;
}

function row(label) {
  return h(
    "tr",
    { dataset: { labelId: label.id, type: label.type } },
    h("td", {}, `#${label.id}`),
    h("td", {}, names(label.type)),
    h("td", {}, t(`source_${label.source}`)),
    h("td", {}, h("a", { href: href(`/photos/${label.image_id}`) }, t("labelsOfPhoto", { id: label.image_id })), label.finding_id ? [h("br"), h("a", { href: href(`/findings/${label.finding_id}`) }, t("labelFix", { id: label.finding_id }))] : null),
    h("td", { class: "num" }, boxText(label.box)),
    h("td", {}, label.updated_by || label.created_by, h("br"), h("span", { class: "muted" }, formatTime(label.updated_at || label.created_at))),
    h("td", {}, label.note || ""),
  );
}

async function labelList(query) {
  const asked = Math.max(1, Math.floor(Number(query.page)) || 1);
  const list = (page) => api(`/v1/labels${qs({ type: query.type, source: query.source, limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE })}`);
  const first = await list(asked);
  const pages = Math.max(1, Math.ceil(first.total / PAGE_SIZE));
  const page = Math.min(asked, pages);
  const items = page === asked ? first.items : (await list(page)).items;
  const columns = [t("id"), t("type"), t("source"), t("photo"), t("labelBox"), t("labelBy"), t("note")];
  return h(
    "section",
    { "aria-labelledby": "label-list-h" },
    h("h2", { id: "label-list-h" }, t("labelsListTitle")),
    filters(query),
    h("p", { class: "count", id: "labels-count", dataset: { total: first.total } }, t("labelsTotal", { n: first.total })),
    items.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "labels-table" }, h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, items.map(row))))
      : h("p", { class: "muted" }, t("noneLabels")),
    first.total > PAGE_SIZE ? pager("/labels", query, page, pages) : null,
  );
}

export async function labelsView(main, { query }) {
  put(main, heading(t("labelsScreen")), loading());
  try {
    const [summary, list] = await Promise.all([api("/v1/labels/summary"), labelList(query)]);
    put(main, heading(t("labelsScreen")), list, perType(summary), ...learningSections(), exportsSection(main));
  } catch (error) {
    put(main, heading(t("labelsScreen")), errorBox(error));
  }
}
