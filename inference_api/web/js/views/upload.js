// #/upload: photos from the phone's camera, the gallery or the file picker (or dropped on a
// laptop), with the place and a note; progress per photo while it is sent and scored, then each
// photo with its boxes and problems.
//
// Every photo is first kept on this device (outbox.js) and then sent by sender.js, one inspection
// with its own client_id each, so a photo taken where the signal is gone waits and goes out by
// itself later, and a retry can never score it twice. A photo taken with the camera here is kept
// at once, with the place as filled in and where the phone is (position.js); photos chosen or
// dropped are kept when "Upload" is pressed.

import { announce, h, put } from "../dom.js";
import { t } from "../i18n.js";
import { here, takenHere } from "../position.js";
import { href } from "../router.js";
import { enqueue, kick, onQueueChange } from "../sender.js";
import { canWrite } from "../session.js";
import { field, heading, refusalText, sizeText } from "./common.js";
import { inspectionResults } from "./inspection.js";

const META = ["region", "township", "village", "inspector", "note"];

/** One row of per-photo progress: name, a <progress> bar, and what is happening to the photo. */
function progressRow(record) {
  const bar = h("progress", { max: 100, value: 0, "aria-label": record.name });
  const state = h("span", { class: "state" }, t("keptHere"));
  const row = h("li", { class: "progress-row", dataset: { file: record.name, id: record.id } }, h("span", { class: "name" }, record.name), bar, state);
  const finish = (ok, text) => {
    bar.max = 1;
    bar.value = 1;
    row.classList.add(ok ? "ok" : "failed");
    state.textContent = text;
  };
  return {
    row,
    update(detail) {
      if (detail.state === "sending") {
        bar.value = Math.round(detail.fraction * 100);
        state.textContent = t("uploading");
      } else if (detail.state === "scoring") {
        bar.removeAttribute("value");
        state.textContent = t("scoring");
      } else if (detail.state === "waiting") {
        bar.value = 0;
        state.textContent = t("waitingForServer");
      } else if (detail.state === "failed") {
        finish(false, `${t("failed")}: ${refusalText(detail.error)}`);
      } else if (detail.state === "sent") {
        const file = detail.inspection.files[0];
        const count = file.ok ? file.findings.length : 0;
        finish(true, count ? t("fileProblems", { n: count }) : t("fileNoProblems"));
      }
    },
  };
}

export function uploadView(main) {
  put(main, heading(t("uploadTitle")));
  if (!canWrite()) {
    main.append(h("p", { class: "error", role: "alert" }, t("notAllowed")));
    return null;
  }
  const chosen = [];
  const rows = new Map();
  const input = h("input", { type: "file", id: "files", name: "files", multiple: true, accept: "image/*,.tif,.tiff,.heic,.heif" });
  const camera = h("input", { type: "file", id: "camera", name: "camera", accept: "image/*", capture: "environment" });
  const chosenText = h("p", { class: "muted", id: "chosen", "aria-live": "polite" });
  const showChosen = () => { chosenText.textContent = chosen.length ? `${t("chosen", { n: chosen.length })}: ${chosen.map((f) => `${f.name} (${sizeText(f.size)})`).join(", ")}` : ""; };
  const add = (files) => { chosen.push(...Array.from(files).filter((f) => !chosen.some((c) => c.name === f.name && c.size === f.size))); showChosen(); };
  input.addEventListener("change", () => { add(input.files); input.value = ""; });

  const zone = h(
    "div",
    { class: "drop", id: "drop" },
    h("div", { class: "field" }, h("label", { for: "camera" }, t("cameraHint")), camera),
    h("div", { class: "field" }, h("label", { for: "files" }, t("dropHint")), input),
    chosenText,
    h("p", { class: "muted" }, t("keptHint"), " ", h("a", { href: href("/queue") }, t("queueLink"))),
  );
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => { event.preventDefault(); zone.classList.remove("over"); add(event.dataTransfer.files); });

  const progressList = h("ul", { class: "progress-list", "aria-label": t("uploading") });
  const message = h("div", { "aria-live": "polite" });
  const results = h("div", { class: "results" });
  const submit = h("button", { type: "submit", class: "primary" }, t("uploadSubmit"));
  const clear = h("button", { type: "button", onclick: () => { chosen.length = 0; showChosen(); } }, t("clearChosen"));

  const form = h(
    "form",
    { class: "upload-form", novalidate: true },
    zone,
    h(
      "fieldset",
      { class: "place" },
      h("legend", {}, t("placeLegend")),
      field("region", t("region"), { maxlength: 200, autocomplete: "off" }),
      field("township", t("township"), { maxlength: 200, autocomplete: "off" }),
      field("village", t("village"), { maxlength: 200, autocomplete: "off" }),
      field("inspector", t("inspector"), { maxlength: 200 }),
    ),
    field("note", t("note"), { maxlength: 4000, rows: 2 }, "textarea"),
    h("div", { class: "actions" }, submit, clear),
  );

  /** Keep `files` on the device with the form's details (and the phone's position where it says where they were taken), then send. */
  async function keep(files, fromCamera) {
    const data = new FormData(form);
    const meta = Object.fromEntries(META.map((k) => [k, String(data.get(k) || "").trim()]));
    let position = null;
    if (files.some((f) => takenHere(f, fromCamera))) {
      put(message, h("p", { class: "muted" }, t("locating")));
      position = await here();
    }
    put(message);
    try {
      for (const file of files) {
        const record = await enqueue(file, meta, takenHere(file, fromCamera) ? position : null);
        const row = progressRow(record);
        rows.set(record.id, row);
        progressList.append(row.row);
      }
      announce(t("keptCount", { n: files.length }));
    } catch (error) {
      // The device refused to keep it (storage full, private mode): say so, the photo is not safe.
      put(message, h("p", { class: "error", role: "alert" }, t("keepFailed", { why: error.message || error.name })));
    }
    kick();
  }

  camera.addEventListener("change", () => {
    const files = Array.from(camera.files);
    camera.value = "";
    if (files.length) keep(files, true);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    put(message);
    if (!chosen.length) {
      put(message, h("p", { class: "error", role: "alert" }, t("noFiles")));
      return;
    }
    const files = chosen.splice(0);
    showChosen();
    await keep(files, false);
  });

  const unsubscribe = onQueueChange((detail) => {
    const row = rows.get(detail.id);
    if (!row) return;
    row.update(detail);
    if (detail.state === "sent") {
      results.append(inspectionResults(detail.inspection));
      announce(`${t("done")}: ${t("inspection", { id: detail.inspection.id })}`);
    }
  });
  main.append(form, progressList, message, results);
  return unsubscribe;
}
