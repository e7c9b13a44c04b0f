// Pieces every view uses: headings that take focus, error boxes, status badges, form fields.

import { h } from "../dom.js";
import { statusName, t } from "../i18n.js";
import { href } from "../router.js";

/** The view's heading; focusable so navigation can move focus to it for screen-reader users. */
export function heading(text) {
  document.title = `${text} · envwatch`;
  return h("h1", { tabindex: "-1" }, text);
}

/** A plain-language error box (role=alert) for an ApiError or any failure. */
export function errorBox(error) {
  let text = error.message || t("error");
  if (error.status === 403) text = t("notAllowed");
  else if (error.code === "model_not_ready") text = t("modelNotReady");
  else if (error.code === "network") text = t("unreachable");
  const details = (error.files || []).map((f) => h("li", {}, `${f.file}: ${f.message}`));
  return h("div", { class: "error", role: "alert" }, h("p", {}, text), details.length ? h("ul", {}, details) : null);
}

export function sizeText(bytes) {
  return bytes > 1_048_576 ? `${(bytes / 1_048_576).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

const REFUSALS = new Set(["empty", "too_large", "invalid_image", "request_too_large"]);

/** Why the server refused a photo: the file's own reason where it gave one, in words the inspector reads, then the server's. */
export function refusalText(error) {
  const file = (error.files || [])[0] || error;
  const said = file.message || error.message;
  return REFUSALS.has(file.code) ? `${t(`refused_${file.code}`)} (${said})` : said;
}

/** Where a finding's position came from, in words: the photo's GPS, or the phone's with its accuracy. */
export function positionName(source, accuracyM) {
  return source === "device" ? t("gpsDevice", { m: Math.round(accuracyM ?? 0) }) : t("gpsPhoto");
}

export function statusBadge(status) {
  return h("span", { class: `badge s-${status}`, dataset: { status } }, statusName(status));
}

/** Marks beside a finding's status: overdue (its deadline passed), rectified late, recurrence (反弹). */
export function deadlineMarks(f) {
  return [
    f.overdue ? h("span", { class: "mark overdue", dataset: { mark: "overdue" }, title: `${t("deadline")} ${f.deadline}` }, t("overdue")) : null,
    f.rectified_late ? h("span", { class: "mark late", dataset: { mark: "late" } }, t("rectifiedLate")) : null,
    f.recurrence_of ? h("a", { class: "mark recurrence", dataset: { mark: "recurrence" }, href: href(`/findings/${f.recurrence_of}`), title: `${t("recurrenceOf")} #${f.recurrence_of}` }, t("recurrence")) : null,
  ];
}

/** A labelled input: field("region", t("region"), {value}) → <label> + <input>. */
export function field(name, label, attrs = {}, tag = "input") {
  const id = `f-${name}`;
  return h("div", { class: "field" }, h("label", { for: id }, label), h(tag, { id, name, ...attrs }));
}

/** A labelled <select> of [value, text] options with `selected` chosen. */
export function select(name, label, options, selected) {
  const id = `f-${name}`;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, name }, options.map(([value, text]) => h("option", { value, selected: value === (selected || "") }, text))),
  );
}

/** "Loading…" while `promise` runs inside `container`. */
export function loading() {
  return h("p", { class: "muted", role: "status" }, t("loading"));
}

/** Previous / "page p of n" / next links for the list at `path`, keeping the link's other `query` values. */
export function pager(path, query, page, pages) {
  const link = (n, text, rel) => (n >= 1 && n <= pages && n !== page ? h("a", { href: href(path, { ...query, page: n }), rel, class: "button" }, text) : h("span", { class: "button disabled", "aria-disabled": "true" }, text));
  return h("nav", { class: "pager", "aria-label": t("page", { p: page, n: pages }) }, link(page - 1, t("prev"), "prev"), h("span", { class: "page-of" }, t("page", { p: page, n: pages })), link(page + 1, t("next"), "next"));
}
