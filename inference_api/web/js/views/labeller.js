// Labels on one stored photo (docs/reviews.md): boxes people drew or fixed, drawn over the photo
// in their own style (dashed, marked ✎) beside the model's solid boxes, and listed below it.
//
// Keys that write get a label mode: drag on the photo (mouse, pen or touch: pointer events) to
// draw a box, drag the box or its corners to move or resize it, drag anew to re-draw it. From the
// keyboard, "new box" puts one in the middle of the photo and focuses it: arrow keys move it,
// Ctrl (⌘) + arrows resize it, Shift takes larger steps, Enter goes on to the type, Esc cancels;
// x1, y1, x2, y2 can also be typed. The type is any of the taxonomy, the ones the model cannot
// detect yet included. On a finding's own page "fix box / type" edits that finding's correction.

import { api, query as qs } from "../api.js";
import { boxFromPoints, clampBox, defaultBox, keyedBox, movedBox, resizedBox } from "../boxes.js";
import { announce, h, put, s } from "../dom.js";
import { formatTime, problemTypes, t, typeName, typeNames } from "../i18n.js";
import { href } from "../router.js";
import { canWrite } from "../session.js";
import { errorBox } from "./common.js";
import { overlayScale, tagWidth } from "./photo.js";

const CORNERS = ["nw", "ne", "sw", "se"];
const COORDS = ["x1", "y1", "x2", "y2"];
/** Screen pixels a press must travel before it draws: less is a click, not a box. */
const MIN_DRAG_PX = 4;

let serial = 0;

/** <option>s of every problem type, "Chinese / English", the ones the model detects first. */
function typeOptions(selected) {
  const option = (p) => h("option", { value: p.key, selected: p.key === selected }, `${typeNames(p.key).zh} / ${typeNames(p.key).en}`);
  const types = problemTypes();
  return [
    h("option", { value: "", selected: !selected }, t("labelChooseType")),
    h("optgroup", { label: t("typesDetectable") }, types.filter((p) => p.detectable).map(option)),
    h("optgroup", { label: t("typesNotDetectable") }, types.filter((p) => !p.detectable).map(option)),
  ];
}

/** "x1,y1 – x2,y2 (w × h px)" of a box, in whole pixels. */
export function boxText(box) {
  const [x1, y1, x2, y2] = COORDS.map((k) => Math.round(box[k]));
  return `${x1},${y1} – ${x2},${y2} (${x2 - x1} × ${y2 - y1} px)`;
}

function sameBox(a, b) {
  return Boolean(a && b) && COORDS.every((k) => a[k] === b[k]);
}

/**
 * The labels on the stored photo `image` ({id, width, height}) shown in `figure` (from
 * photoWithBoxes): drawn over it, listed in the returned <section>, and for keys that write, drawn
 * and edited there. `finding`: the finding this page is about, for "fix box / type". `level`: the
 * section heading's level in its page.
 */
export function labeller(figure, image, { finding = null, level = 3 } = {}) {
  serial += 1;
  const id = (name) => `lb${serial}-${name}`;
  const { width, height } = image;
  const writer = canWrite();
  const frame = figure.querySelector(".frame");
  const photo = frame.querySelector("img");
  const { stroke, size } = overlayScale(width, height);
  const layer = s("svg", { class: "labels", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", "aria-hidden": "true" });
  const editbox = h("div", { class: "editbox", id: id("box"), tabindex: "0", hidden: true, "aria-describedby": id("help") }, CORNERS.map((c) => h("span", { class: `handle ${c}`, dataset: { corner: c } })));
  frame.append(layer);
  if (writer) frame.append(editbox);
  const panel = h("section", { class: "labels-panel", dataset: { imageId: image.id }, "aria-labelledby": id("h") });
  const state = { labels: [], draft: null, mode: false };
  let form = null;
  let returnFocus = null;

  function drawLayer() {
    const shown = state.labels.filter((l) => !state.draft || l.id !== state.draft.labelId);
    put(layer, shown.map((l) => {
      const { x1, y1, x2, y2 } = l.box;
      const text = `✎ ${typeName(l.type)}`;
      const tagY = y2 + size * 1.3 <= height ? y2 : Math.max(0, y2 - size * 1.3);
      return s(
        "g",
        { class: `label-box t-${l.type}`, dataset: { labelId: l.id } },
        s("rect", { class: "halo", x: x1, y: y1, width: x2 - x1, height: y2 - y1, "stroke-width": stroke * 2 }),
        s("rect", { class: "edge", x: x1, y: y1, width: x2 - x1, height: y2 - y1, "stroke-width": stroke, "stroke-dasharray": `${stroke * 4} ${stroke * 2}` }),
        s("rect", { class: "tag", x: x1, y: tagY, width: tagWidth(text, size), height: size * 1.3, "stroke-width": stroke }),
        s("text", { x: x1 + size * 0.3, y: tagY + size, "font-size": size }, text),
        s("title", {}, `${text} #${l.id}`),
      );
    }));
  }

  /** Put the box being edited where its draft says, in percent of the photo so it follows any resize. */
  function syncBox() {
    const draft = state.draft;
    editbox.hidden = !draft;
    if (!draft) return;
    const b = draft.box;
    Object.assign(editbox.style, {
      left: `${(b.x1 / width) * 100}%`,
      top: `${(b.y1 / height) * 100}%`,
      width: `${((b.x2 - b.x1) / width) * 100}%`,
      height: `${((b.y2 - b.y1) / height) * 100}%`,
    });
    editbox.setAttribute("class", `editbox t-${draft.type || "none"}`);
    editbox.setAttribute("aria-label", t("labelBoxAt", b));
    if (form) COORDS.forEach((k) => { form.elements[k].value = b[k]; });
  }

  function setBox(box) {
    state.draft.box = box;
    syncBox();
  }

  function setMode(on) {
    state.mode = on;
    frame.classList.toggle("labelling", on);
    const toggle = panel.querySelector("button.label-mode");
    if (toggle) toggle.setAttribute("aria-pressed", String(on));
  }

  function render() {
    drawLayer();
    renderPanel();
    syncBox();
  }

  function startDraft(draft) {
    returnFocus = document.activeElement;
    state.draft = draft;
    render();
    setMode(true);
  }

  function fromLabel(label) {
    const box = clampBox(label.box, width, height);
    return { labelId: label.id, findingId: label.finding_id, type: label.type, note: label.note || "", box, original: box };
  }

  function newBox() {
    startDraft({ labelId: null, findingId: null, type: "", note: "", box: defaultBox(width, height), original: null });
    editbox.focus();
  }

  function fix() {
    const existing = state.labels.find((l) => l.finding_id === finding.id);
    const box = clampBox(finding.box, width, height);
    startDraft(existing ? fromLabel(existing) : { labelId: null, findingId: finding.id, type: finding.type, note: "", box, original: box });
    editbox.focus();
  }

  function edit(label) {
    startDraft(fromLabel(label));
    editbox.focus();
  }

  function cancel() {
    state.draft = null;
    render();
    (returnFocus && returnFocus.isConnected ? returnFocus : panel.querySelector(`#${id("h")}`)).focus();
  }

  function toggleMode() {
    if (state.mode && state.draft) cancel();
    setMode(!state.mode);
  }

  async function load() {
    const page = await api(`/v1/labels${qs({ image_id: image.id, limit: 1000 })}`);
    state.labels = page.items;
    render();
  }

  function focusLabel(labelId) {
    const item = panel.querySelector(`li[data-label-id='${labelId}']`);
    (item || panel.querySelector(`#${id("h")}`)).focus();
  }

  /** The typed coordinates, or null when one is empty or not a number (a number field's value is then ""). */
  function readCoords() {
    const raw = COORDS.map((k) => form.elements[k].value.trim());
    if (raw.some((v) => v === "" || !Number.isFinite(Number(v)))) return null;
    return Object.fromEntries(COORDS.map((k, i) => [k, Number(raw[i])]));
  }

  async function save(event) {
    event.preventDefault();
    const draft = state.draft;
    const message = form.querySelector(".form-message");
    const coords = readCoords();
    if (!coords) {
      put(message, h("p", { class: "error", role: "alert" }, t("labelBadCoords")));
      return;
    }
    setBox(clampBox(coords, width, height));
    draft.type = form.elements.type.value;
    draft.note = form.elements.note.value.trim();
    if (!draft.type) {
      put(message, h("p", { class: "error", role: "alert" }, t("labelNeedType")));
      form.elements.type.focus();
      return;
    }
    // A box left as it was is not sent: a correction keeps the finding's exact box, an edit its own.
    const body = { type: draft.type, note: draft.note || null, ...(sameBox(draft.box, draft.original) ? {} : { box: draft.box }) };
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const saved = draft.labelId
        ? await api(`/v1/labels/${draft.labelId}`, { method: "PATCH", json: body })
        : await api("/v1/labels", { method: "POST", json: { ...(draft.findingId ? { finding_id: draft.findingId } : { image_id: image.id }), ...body } });
      state.draft = null;
      await load();
      announce(t("labelSaved", { id: saved.id }));
      focusLabel(saved.id);
    } catch (error) {
      buttons.forEach((b) => { b.disabled = false; });
      put(message, errorBox(error));
    }
  }

  async function remove(label, item) {
    try {
      await api(`/v1/labels/${label.id}`, { method: "DELETE" });
      if (state.draft && state.draft.labelId === label.id) state.draft = null;
      await load();
      announce(t("labelDeleted", { id: label.id }));
      panel.querySelector(`#${id("h")}`).focus();
    } catch (error) {
      item.append(errorBox(error));
    }
  }

  function confirmDelete(label, item) {
    const actions = item.querySelector(".actions");
    const yes = h("button", { type: "button", class: "danger", dataset: { action: "confirm-delete" }, onclick: () => remove(label, item) }, t("labelDeleteYes"));
    const no = h("button", { type: "button", dataset: { action: "keep" }, onclick: () => { item.replaceWith(listItem(label)); focusLabel(label.id); } }, t("labelDeleteNo"));
    put(actions, h("span", { class: "confirm" }, t("labelDeleteConfirm")), yes, no);
    yes.focus();
  }

  function listItem(label) {
    const names = typeNames(label.type);
    const item = h(
      "li",
      { class: "label-item", tabindex: "-1", dataset: { labelId: label.id, type: label.type, source: label.source } },
      h("span", { class: `swatch t-${label.type}`, "aria-hidden": "true" }),
      h("span", { class: "label-name" }, `✎ #${label.id} `, h("span", { lang: "zh-CN" }, names.zh), " / ", h("span", { lang: "en" }, names.en)),
      " ",
      h("span", { class: "chip source" }, t(`source_${label.source}`)),
      label.finding_id ? [" ", h("a", { href: href(`/findings/${label.finding_id}`) }, t("labelFix", { id: label.finding_id }))] : null,
      h("div", { class: "muted small" }, `${boxText(label.box)} · ${label.updated_by || label.created_by} · ${formatTime(label.updated_at || label.created_at)}`),
      label.note ? h("div", { class: "note" }, label.note) : null,
    );
    if (writer) {
      item.append(h(
        "div",
        { class: "actions" },
        h("button", { type: "button", dataset: { action: "edit" }, onclick: () => edit(label) }, t("labelEditButton")),
        h("button", { type: "button", dataset: { action: "delete" }, onclick: () => confirmDelete(label, item) }, t("labelDelete")),
      ));
    }
    return item;
  }

  function editorForm() {
    const draft = state.draft;
    const title = draft.labelId ? t("labelEdit", { id: draft.labelId }) : draft.findingId ? t("labelFix", { id: draft.findingId }) : t("labelNew");
    const coord = (k, max) => h("div", { class: "field" }, h("label", { for: id(k) }, k), h("input", { id: id(k), name: k, type: "number", min: 0, max, step: 1, inputmode: "numeric", value: draft.box[k] }));
    const editor = h(
      "form",
      { class: "label-editor", novalidate: true, "aria-labelledby": id("edit-h"), dataset: { labelId: draft.labelId || "", findingId: draft.findingId || "" } },
      h(`h${level + 1}`, { id: id("edit-h") }, title),
      h("div", { class: "field" }, h("label", { for: id("type") }, t("type")), h("select", { id: id("type"), name: "type" }, typeOptions(draft.type))),
      h("fieldset", { class: "coords" }, h("legend", {}, t("labelBoxPx", { w: width, h: height })), coord("x1", width), coord("y1", height), coord("x2", width), coord("y2", height)),
      h("div", { class: "field" }, h("label", { for: id("note") }, t("labelNote")), h("textarea", { id: id("note"), name: "note", rows: 2, maxlength: 4000 }, draft.note)),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", dataset: { action: "save" } }, t("labelSave")), h("button", { type: "button", dataset: { action: "cancel" }, onclick: cancel }, t("labelCancel"))),
      h("div", { class: "form-message", "aria-live": "polite" }),
    );
    editor.elements.type.addEventListener("change", () => {
      draft.type = editor.elements.type.value;
      syncBox();
    });
    COORDS.forEach((k) => editor.elements[k].addEventListener("change", () => {
      const coords = readCoords();
      if (coords) setBox(clampBox(coords, width, height));
    }));
    editor.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        cancel();
      }
    });
    editor.addEventListener("submit", save);
    return editor;
  }

  function renderPanel() {
    form = state.draft ? editorForm() : null;
    const tools = writer
      ? [
          h(
            "div",
            { class: "actions label-tools" },
            h("button", { type: "button", class: "label-mode", "aria-pressed": String(state.mode), onclick: toggleMode }, t("labelMode")),
            h("button", { type: "button", class: "label-new", onclick: newBox }, t("labelNewBox")),
            finding ? h("button", { type: "button", class: "label-fix", onclick: fix }, t("labelFixButton")) : null,
          ),
          h("p", { class: "muted help", id: id("help") }, t("labelHelp")),
        ]
      : null;
    panel.dataset.count = state.labels.length;
    put(
      panel,
      h(`h${level}`, { id: id("h"), tabindex: "-1" }, t("labelsTitle", { n: state.labels.length })),
      h("p", { class: "muted" }, t("labelsLegend")),
      tools,
      form,
      state.labels.length ? h("ul", { class: "labels-list" }, state.labels.map(listItem)) : h("p", { class: "muted" }, t("labelsNone")),
    );
  }

  // Pointer editing (mouse, pen, touch): draw, move, resize; only in label mode.
  const toPhoto = (event) => {
    const r = photo.getBoundingClientRect();
    return { x: ((event.clientX - r.left) / r.width) * width, y: ((event.clientY - r.top) / r.height) * height };
  };
  let drag = null;
  frame.addEventListener("pointerdown", (event) => {
    if (!state.mode || event.button !== 0) return;
    event.preventDefault();
    const at = toPhoto(event);
    const corner = event.target.dataset && event.target.dataset.corner;
    if (state.draft && corner) drag = { kind: "resize", corner };
    else if (state.draft && event.target === editbox) drag = { kind: "move", start: at, box: state.draft.box };
    else drag = { kind: "draw", start: at, from: [event.clientX, event.clientY], drawing: false, fresh: !state.draft };
    frame.setPointerCapture(event.pointerId);
  });
  frame.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const at = toPhoto(event);
    if (drag.kind === "resize") setBox(resizedBox(state.draft.box, drag.corner, at, width, height));
    else if (drag.kind === "move") setBox(movedBox(drag.box, Math.round(at.x - drag.start.x), Math.round(at.y - drag.start.y), width, height));
    else if (drag.drawing || Math.hypot(event.clientX - drag.from[0], event.clientY - drag.from[1]) >= MIN_DRAG_PX) {
      const box = boxFromPoints(drag.start, at, width, height);
      if (!drag.drawing && drag.fresh) startDraft({ labelId: null, findingId: null, type: "", note: "", box, original: null });
      drag.drawing = true;
      setBox(box);
    }
  });
  const release = () => {
    if (drag && drag.kind === "draw" && drag.drawing && drag.fresh) form.elements.type.focus();
    else if (drag && state.draft) editbox.focus();
    drag = null;
  };
  frame.addEventListener("pointerup", release);
  frame.addEventListener("pointercancel", release);
  frame.addEventListener("dragstart", (event) => event.preventDefault());

  editbox.addEventListener("keydown", (event) => {
    if (!state.draft) return;
    if (event.key === "Escape" || event.key === "Enter") {
      event.preventDefault();
      if (event.key === "Escape") cancel();
      else form.elements.type.focus();
      return;
    }
    const next = keyedBox(state.draft.box, event.key, { large: event.shiftKey, resize: event.ctrlKey || event.metaKey }, width, height);
    if (next) {
      event.preventDefault();
      setBox(next);
    }
  });

  put(panel, h(`h${level}`, { id: id("h"), tabindex: "-1" }, t("labelsTitle", { n: "…" })));
  load().catch((error) => panel.append(errorBox(error)));
  return panel;
}
