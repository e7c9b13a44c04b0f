// #/findings/{id}: one finding with its photo and box, details, history and the review actions
// its status allows (the same diagram as the API's). Once rectified with a follow-up photo, the
// original and the follow-up are shown side by side, the follow-up with what is still detected.
// The labels on its photo are drawn and listed beside it, with "fix box / type" (a correction).

import { api, upload } from "../api.js";
import { announce, h, put } from "../dom.js";
import { formatScore, formatTime, statusName, t, typeName, typeNames } from "../i18n.js";
import { href } from "../router.js";
import { canWrite } from "../session.js";
import { deadlineMarks, errorBox, field, heading, loading, positionName, statusBadge } from "./common.js";
import { labeller } from "./labeller.js";
import { photoWithBoxes } from "./photo.js";

/** Buttons per status: [target status, label key]; rectified goes through the follow-up form. */
const MOVES = {
  candidate: [["confirmed", "actConfirm"], ["dismissed", "actDismiss"]],
  confirmed: [["rectification_ordered", "actOrder"]],
  rectification_ordered: [["rectified", "actRectified"]],
  rectified: [["closed", "actClose"], ["rectification_ordered", "actRecheckFailed"]],
  dismissed: [],
  closed: [],
};

function details(f) {
  const names = typeNames(f.type);
  const place = [f.region, f.township, f.village].filter(Boolean).join(" · ") || "–";
  const rows = [
    [t("type"), h("span", {}, h("span", { lang: "zh-CN" }, names.zh), " / ", h("span", { lang: "en" }, names.en))],
    [t("status"), h("span", {}, statusBadge(f.status), deadlineMarks(f))],
    [t("deadline"), h("span", { id: "finding-deadline" }, f.deadline || "–")],
    ...(f.recurrence_of ? [[t("recurrenceOf"), h("a", { id: "recurrence-of", href: href(`/findings/${f.recurrence_of}`) }, `#${f.recurrence_of}`)]] : []),
    [t("score"), formatScore(f.score)],
    [t("label"), f.label],
    [t("extent"), t({ photo: "extentPhoto", approx: "extentApprox" }[f.extent] || "extentBox")],
    [t("place"), place],
    [t("captured"), formatTime(f.captured_at)],
    [t("created"), formatTime(f.created_at)],
    [t("gps"), f.gps ? h("span", { id: "finding-position", dataset: { source: f.gps.source } }, `${f.gps.lat.toFixed(5)}, ${f.gps.lon.toFixed(5)} (${positionName(f.gps.source, f.gps.accuracy_m)}) `, h("a", { href: href("/map", { focus: f.id }) }, t("onMap"))) : "–"],
    [t("model"), f.model_version],
  ];
  return h(
    "section",
    { "aria-labelledby": "details-h" },
    h("h2", { id: "details-h" }, t("details")),
    h("dl", { class: "details" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("p", {}, h("a", { href: href(`/inspections/${f.inspection_id}`) }, t("openInspection"))),
  );
}

function historyTable(f) {
  return h(
    "section",
    { "aria-labelledby": "history-h" },
    h("h2", { id: "history-h" }, t("history")),
    h("div", { class: "table-wrap" }, h(
      "table",
      { class: "history" },
      h("thead", {}, h("tr", {}, [t("at"), t("change"), t("actor"), t("note")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, f.history.map((e) => h(
        "tr",
        { dataset: { to: e.to_status } },
        h("td", {}, formatTime(e.at)),
        h("td", {}, e.from_status ? `${statusName(e.from_status)} → ${statusName(e.to_status)}` : `${t("raised")}: ${statusName(e.to_status)}`),
        h("td", {}, e.actor),
        h("td", {}, e.note || "", e.deadline ? h("span", { class: "muted" }, ` (${t("deadline")} ${e.deadline})`) : null, e.image_id ? h("span", { class: "muted" }, ` (${t("followup")} #${e.image_id})`) : null),
      ))),
    )),
  );
}

/** The finding's photo (and follow-up), and the labels section of its photo. */
async function photos(f) {
  const followup = [...f.history].reverse().find((e) => e.to_status === "rectified" && e.image_id);
  const [width, height] = await imageSize(f.image_id);
  const before = photoWithBoxes(f.image_id, width, height, [f], `${t("photo")} #${f.image_id}`, followup ? t("before") : null);
  const labels = labeller(before, { id: f.image_id, width, height }, { finding: f, level: 2 });
  if (!followup) return { shown: h("div", { class: "photos single" }, before), labels };
  const seen = followup.followup_problems || [];
  const after = photoWithBoxes(followup.image_id, ...(await imageSize(followup.image_id)), seen, `${t("followup")} #${followup.image_id}`, t("after"));
  const verdict = seen.length
    ? h("div", {}, h("p", {}, t("stillSeen", { n: seen.length })), h("ol", {}, seen.map((p) => h("li", {}, `${typeNames(p.type).zh} / ${typeNames(p.type).en} ${formatScore(p.score)}`))))
    : h("p", { class: "ok" }, t("noneSeen"));
  return { shown: h("div", { class: "photos before-after" }, before, h("div", {}, after, verdict)), labels };
}

async function imageSize(imageId) {
  const image = await api(`/v1/images/${imageId}`);
  return [image.width, image.height];
}

/** Today in the browser's calendar (YYYY-MM-DD): the earliest deadline the picker offers; the server checks. */
function today() {
  const now = new Date();
  return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}-${String(now.getDate()).padStart(2, "0")}`;
}

function actions(f, onMoved) {
  const section = h("section", { class: "review", "aria-labelledby": "actions-h" }, h("h2", { id: "actions-h" }, t("actions")));
  const moves = MOVES[f.status];
  if (!canWrite() || !moves.length) {
    section.append(h("p", { class: "muted" }, t(canWrite() ? "noActions" : "readOnly")));
    return section;
  }
  const message = h("div", { "aria-live": "polite" });
  const note = field("note", t("actionNote"), { rows: 2, maxlength: 4000 }, "textarea");
  const photo = f.status === "rectification_ordered" ? field("followup", t("followupPhoto"), { type: "file", accept: "image/*" }) : null;
  const orders = moves.some(([to]) => to === "rectification_ordered");
  const deadline = orders ? field("deadline", t("deadlineField"), { type: "date", min: today(), "aria-describedby": "deadline-help" }) : null;
  const help = orders ? h("p", { class: "muted small", id: "deadline-help" }, t("deadlineHelp")) : null;
  const form = h("form", { class: "review-form" }, note, photo, deadline, help, h("div", { class: "actions" }, moves.map(([to, label]) => h("button", { type: "submit", name: "to", value: to, class: to === "dismissed" || label === "actRecheckFailed" ? "" : "primary", dataset: { to } }, t(label)))), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const to = event.submitter ? event.submitter.value : moves[0][0];
    const text = form.elements.note.value.trim() || null;
    form.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      if (to === "rectified") {
        const body = new FormData();
        if (text) body.append("note", text);
        const file = form.elements.followup && form.elements.followup.files[0];
        if (file) body.append("file", file, file.name);
        await upload(`/v1/findings/${f.id}/rectification`, body);
      } else {
        const due = to === "rectification_ordered" && form.elements.deadline.value ? form.elements.deadline.value : undefined;
        await api(`/v1/findings/${f.id}/transitions`, { method: "POST", json: { to, note: text, deadline: due } });
      }
      announce(t("moved", { s: statusName(to) }));
      onMoved();
    } catch (error) {
      form.querySelectorAll("button").forEach((b) => { b.disabled = false; });
      put(message, errorBox(error));
    }
  });
  section.append(form);
  return section;
}

export async function findingView(main, { params }) {
  const id = params[0];
  put(main, heading(t("findingTitle", { id })), loading());
  const show = async (focusStatus) => {
    try {
      const f = await api(`/v1/findings/${id}`);
      const title = `${t("findingTitle", { id })} · ${typeName(f.type)}`;
      const { shown, labels } = await photos(f);
      put(
        main,
        heading(title),
        h("p", { class: "status-line", id: "finding-status", tabindex: "-1", dataset: { status: f.status } }, `${t("status")}: `, statusBadge(f.status)),
        h("div", { class: "finding-layout" }, shown, h("div", { class: "side" }, actions(f, () => show(true)), h("div", { class: "side-card" }, labels), details(f))),
        historyTable(f),
      );
      if (focusStatus) document.getElementById("finding-status").focus();
    } catch (error) {
      put(main, heading(t("findingTitle", { id })), errorBox(error));
    }
  };
  await show(false);
}
