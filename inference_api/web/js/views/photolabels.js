// Photo labels (docs/reviews.md, "Photo labels and learning new types"): "this photo shows X" or
// "does not show X", for any taxonomy type, with no box. On a photo's page: choose the type, then
// one button per answer, and the photo's labels listed with who and when. On the labels screen:
// "label next", the unlabelled photos whose score for a type is most uncertain, each answerable
// in place; and, for admins, learning (a new version with heads for the types with enough labels,
// its cross-validated numbers shown before anything is promoted), promotion and rollback.

import { api, query as qs } from "../api.js";
import { announce, h, put } from "../dom.js";
import { formatScore, formatTime, problemTypes, t, typeNames } from "../i18n.js";
import { href } from "../router.js";
import { canWrite, isAdmin } from "../session.js";
import { errorBox, select } from "./common.js";

function typeChoices() {
  return problemTypes().map((p) => [p.key, `${typeNames(p.key).zh} / ${typeNames(p.key).en}`]);
}

function answer(imageId, type, shows) {
  return api("/v1/photo-labels", { method: "POST", json: { image_id: imageId, type, shows } });
}

function answerButtons(onAnswer) {
  return [
    h("button", { type: "button", class: "primary", dataset: { shows: "true" }, onclick: () => onAnswer(true) }, t("photoShows")),
    h("button", { type: "button", dataset: { shows: "false" }, onclick: () => onAnswer(false) }, t("photoNotShows")),
  ];
}

/** The photo page's section: answer for a type, and this photo's live photo labels. */
export function photoLabelPanel(imageId) {
  const list = h("ul", { class: "photo-labels" });
  const message = h("div", { "aria-live": "polite" });
  const chooser = select("photo-label-type", t("type"), typeChoices(), "");
  async function refresh() {
    const page = await api(`/v1/photo-labels${qs({ image_id: imageId, limit: 1000 })}`);
    put(list, page.items.map((l) => h(
      "li",
      { dataset: { photoLabelId: l.id, type: l.type, shows: String(l.shows) } },
      `${typeNames(l.type).zh} / ${typeNames(l.type).en}: ${t(l.shows ? "photoShows" : "photoNotShows")} · ${l.created_by} · ${formatTime(l.created_at)}${l.shown_model ? ` · ${t("shownModel", { v: l.shown_model })}` : ""} `,
      canWrite() ? h("button", { type: "button", class: "link", onclick: () => remove(l.id) }, t("photoLabelDelete")) : null,
    )));
  }
  async function remove(id) {
    try {
      await api(`/v1/photo-labels/${id}`, { method: "DELETE" });
      await refresh();
    } catch (error) {
      put(message, errorBox(error));
    }
  }
  async function onAnswer(shows) {
    const type = chooser.querySelector("select").value;
    try {
      await answer(imageId, type, shows);
      const text = t("photoLabelled");
      put(message, h("p", { class: "ok", id: "photo-label-done" }, text));
      announce(text);
      await refresh();
    } catch (error) {
      put(message, errorBox(error));
    }
  }
  refresh().catch((error) => put(message, errorBox(error)));
  return h(
    "section",
    { class: "photo-label-panel", "aria-labelledby": "photo-labels-h" },
    h("h2", { id: "photo-labels-h" }, t("photoLabelsTitle")),
    h("p", { class: "muted" }, t("photoLabelsHelp")),
    canWrite() ? [chooser, h("div", { class: "actions" }, answerButtons(onAnswer))] : null,
    message,
    list,
  );
}

/** "Label next": the photos the current answers leave most uncertain for a type, answerable here. */
function uncertainSection() {
  const out = h("div", { "aria-live": "polite" });
  const chooser = select("uncertain-type", t("type"), typeChoices(), "");
  async function show() {
    const type = chooser.querySelector("select").value;
    try {
      const page = await api(`/v1/photo-labels/uncertain${qs({ type, limit: 12 })}`);
      put(out, h("p", { class: "muted" }, t("uncertainCount", { p: page.positives, n: page.negatives, c: page.considered })), h("ul", { class: "uncertain" }, page.items.map((item) => {
        const li = h("li", { dataset: { imageId: item.image_id } }, h("a", { href: href(`/photos/${item.image_id}`) }, t("labelsOfPhoto", { id: item.image_id })), ` ${formatScore(item.score)} `);
        if (canWrite()) li.append(...answerButtons(async (shows) => {
          try {
            await answer(item.image_id, type, shows);
            li.replaceChildren(t("photoLabelled"));
          } catch (error) {
            li.append(errorBox(error));
          }
        }));
        return li;
      })));
    } catch (error) {
      put(out, errorBox(error));
    }
  }
  return h(
    "section",
    { class: "card", "aria-labelledby": "uncertain-h" },
    h("h2", { id: "uncertain-h" }, t("uncertainTitle")),
    h("p", { class: "muted" }, t("uncertainHelp")),
    chooser,
    h("div", { class: "actions" }, h("button", { type: "button", id: "uncertain-show", onclick: show }, t("uncertainShow"))),
    out,
  );
}

function reportTable(report) {
  const columns = [t("type"), t("photoShows"), t("photoNotShows"), t("threshold"), t("cvRecall"), t("cvFalseAlarms")];
  return h("div", { class: "table-wrap" }, h(
    "table",
    { class: "learn-report" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, report.types.map((r) => h(
      "tr",
      { dataset: { type: r.type, cvRecall: r.cv_recall, cvFalseAlarms: r.cv_false_alarms } },
      h("td", {}, `${typeNames(r.type).zh} / ${typeNames(r.type).en}`),
      h("td", { class: "num" }, r.positives),
      h("td", { class: "num" }, r.negatives),
      h("td", { class: "num" }, formatScore(r.threshold)),
      h("td", { class: "num" }, `${formatScore(r.cv_recall)} (${r.cv_flagged_positives}/${r.positives})`),
      h("td", { class: "num" }, `${formatScore(r.cv_false_alarms)} (${r.cv_flagged_negatives}/${r.negatives})`),
    ))),
  ));
}

/** Admins: learn, read the cross-validated report, promote the new version, or roll back. */
function learnSection() {
  const out = h("div", { "aria-live": "polite" });
  const done = (models) => {
    const text = t("servingNow", { v: models.serving });
    put(out, h("p", { class: "ok", id: "serving-now", dataset: { serving: models.serving } }, text));
    announce(text);
  };
  async function learn() {
    put(out, h("p", { class: "muted" }, t("learning")));
    try {
      const report = await api("/v1/models/learn", { method: "POST", json: {} });
      const skipped = Object.entries(report.skipped).map(([type, why]) => h("li", {}, `${typeNames(type).en}: ${why}`));
      const promote = h("button", { type: "button", class: "primary", id: "promote-learned", onclick: async () => {
        try {
          done(await api("/v1/models/promote", { method: "POST", json: { version: report.version } }));
        } catch (error) {
          out.append(errorBox(error));
        }
      } }, t("promoteVersion", { v: report.version }));
      put(out, h("p", { id: "learned-version", dataset: { version: report.version } }, t("learnedVersion", { v: report.version, b: report.base })), reportTable(report), skipped.length ? h("ul", {}, skipped) : null, h("p", { class: "muted" }, t("learnedNote")), h("div", { class: "actions" }, promote));
      announce(t("learnedVersion", { v: report.version, b: report.base }));
    } catch (error) {
      put(out, errorBox(error));
    }
  }
  async function rollback() {
    try {
      done(await api("/v1/models/rollback", { method: "POST" }));
    } catch (error) {
      put(out, errorBox(error));
    }
  }
  return h(
    "section",
    { class: "card", "aria-labelledby": "learn-h" },
    h("h2", { id: "learn-h" }, t("learnTitle")),
    h("p", { class: "muted" }, t("learnHelp")),
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", id: "learn", onclick: learn }, t("learnSubmit")), h("button", { type: "button", id: "rollback", onclick: rollback }, t("rollbackSubmit"))),
    out,
  );
}

/** The labels screen's part: label next, then (admins) learning. */
export function learningSections() {
  return [uncertainSection(), isAdmin() ? learnSection() : null];
}
