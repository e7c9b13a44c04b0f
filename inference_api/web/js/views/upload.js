// #/upload: photos by drag and drop or file picker, with the place and a note; progress per file
// while the request goes out and is scored, then each photo with its boxes and problems.
//
// Files go in batches (one inspection each, well under the server's per-request file limit),
// each with a random client_id, so a retry after "server busy" (503) can never score twice.

import { upload } from "../api.js";
import { announce, h, put } from "../dom.js";
import { t } from "../i18n.js";
import { canWrite } from "../session.js";
import { errorBox, field, heading } from "./common.js";
import { inspectionResults } from "./inspection.js";

const BATCH_FILES = 16;
const MAX_RETRIES = 3;

function clientId() {
  // crypto.randomUUID needs a secure context; a laptop on http://<lan address> is not one.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function sizeText(bytes) {
  return bytes > 1_048_576 ? `${(bytes / 1_048_576).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

/** One row of per-file progress: name, a <progress> bar, and what is happening to the file. */
function progressRow(file) {
  const bar = h("progress", { max: 100, value: 0, "aria-label": file.name });
  const state = h("span", { class: "state" }, t("uploading"));
  const row = h("li", { class: "progress-row", dataset: { file: file.name } }, h("span", { class: "name" }, file.name), bar, state);
  return {
    row,
    sent(fraction) { bar.value = Math.round(fraction * 100); },
    scoring() { bar.removeAttribute("value"); state.textContent = t("scoring"); },
    finish(ok, text) {
      bar.max = 1;
      bar.value = 1;
      row.classList.add(ok ? "ok" : "failed");
      state.textContent = text;
    },
  };
}

function wait(seconds) {
  return new Promise((resolve) => window.setTimeout(resolve, seconds * 1000));
}

async function sendBatch(files, meta, rows, onBusy) {
  const form = new FormData();
  files.forEach((file) => form.append("files", file, file.name));
  for (const [name, value] of Object.entries(meta)) if (value) form.append(name, value);
  form.append("client_id", clientId());
  // Multipart bodies carry the files in order, so bytes sent say which file is going out.
  const starts = files.map((_, i) => files.slice(0, i).reduce((sum, f) => sum + f.size, 0));
  const progress = (loaded) => rows.forEach((row, i) => row.sent(Math.min(1, Math.max(0, (loaded - starts[i]) / (files[i].size || 1)))));
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await upload("/v1/inspections", form, { onProgress: progress, onSent: () => rows.forEach((r) => r.scoring()) });
    } catch (error) {
      if (error.code !== "overloaded" || attempt >= MAX_RETRIES) throw error;
      onBusy(error.retryAfter || 5);
      await wait(error.retryAfter || 5);
    }
  }
}

export function uploadView(main) {
  put(main, heading(t("uploadTitle")));
  if (!canWrite()) {
    main.append(h("p", { class: "error", role: "alert" }, t("notAllowed")));
    return;
  }
  const chosen = [];
  const input = h("input", { type: "file", id: "files", name: "files", multiple: true, accept: "image/*,.tif,.tiff,.heic,.heif" });
  const chosenText = h("p", { class: "muted", id: "chosen", "aria-live": "polite" });
  const showChosen = () => { chosenText.textContent = chosen.length ? `${t("chosen", { n: chosen.length })}: ${chosen.map((f) => `${f.name} (${sizeText(f.size)})`).join(", ")}` : ""; };
  const add = (files) => { chosen.push(...Array.from(files).filter((f) => !chosen.some((c) => c.name === f.name && c.size === f.size))); showChosen(); };
  input.addEventListener("change", () => { add(input.files); input.value = ""; });

  const zone = h("div", { class: "drop", id: "drop" }, h("label", { for: "files" }, t("dropHint")), input, chosenText);
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
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    put(message);
    if (!chosen.length) {
      put(message, h("p", { class: "error", role: "alert" }, t("noFiles")));
      return;
    }
    const data = new FormData(form);
    const meta = Object.fromEntries(["region", "township", "village", "inspector", "note"].map((k) => [k, String(data.get(k) || "").trim()]));
    const files = chosen.splice(0);
    showChosen();
    submit.disabled = true;
    put(progressList);
    put(results);
    for (let i = 0; i < files.length; i += BATCH_FILES) {
      const batch = files.slice(i, i + BATCH_FILES);
      const rows = batch.map(progressRow);
      rows.forEach((r) => progressList.append(r.row));
      try {
        const inspection = await sendBatch(batch, meta, rows, (s) => put(message, h("p", {}, t("busyRetry", { s }))));
        put(message);
        inspection.files.forEach((file, j) => {
          const count = inspection.findings.filter((f) => file.findings.includes(f.id)).length;
          rows[j].finish(file.ok, file.ok ? (count ? t("fileProblems", { n: count }) : t("fileNoProblems")) : `${t("failed")}: ${file.error.message}`);
        });
        results.append(inspectionResults(inspection));
        announce(`${t("done")}: ${t("inspection", { id: inspection.id })}`);
      } catch (error) {
        rows.forEach((r, j) => {
          const reason = (error.files || []).find((f) => f.file === batch[j].name);
          r.finish(false, `${t("failed")}: ${reason ? reason.message : error.message}`);
        });
        put(message, errorBox(error));
      }
    }
    submit.disabled = false;
  });
  main.append(form, progressList, message, results);
}
