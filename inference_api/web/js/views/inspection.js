// What the detector found in one inspection: each photo with its boxes and its problems listed
// (type in Chinese and English, score, status, a link to review it), and the labels people drew
// on it (drawn and edited in label mode). Used after an upload, for a batch job's results, and
// at #/inspections/{id}.

import { api } from "../api.js";
import { h, put } from "../dom.js";
import { formatScore, formatTime, t, typeNames } from "../i18n.js";
import { href } from "../router.js";
import { errorBox, heading, loading, statusBadge } from "./common.js";
import { labeller } from "./labeller.js";
import { photoWithBoxes } from "./photo.js";

/** One finding as a list item: type in both languages, score, status, a link to review it. */
export function problemItem(finding) {
  const names = typeNames(finding.type);
  return h(
    "li",
    { class: "problem", dataset: { findingId: finding.id, type: finding.type } },
    h("a", { href: href(`/findings/${finding.id}`) }, h("span", { class: `swatch t-${finding.type}`, "aria-hidden": "true" }), h("span", { class: "zh", lang: "zh-CN" }, names.zh), " ", h("span", { class: "en", lang: "en" }, names.en)),
    " ",
    h("span", { class: "score" }, `${t("score")} ${formatScore(finding.score)}`),
    " ",
    statusBadge(finding.status),
    finding.extent === "approx" ? [" ", h("span", { class: "extent muted", dataset: { extent: "approx" } }, `≈ ${t("extentApprox")}`)] : null,
  );
}

function fileCard(file, findings) {
  if (!file.ok) {
    return h("article", { class: "card file-result failed", dataset: { file: file.file } }, h("h3", {}, file.file), errorBox(file.error));
  }
  const mine = findings.filter((f) => file.findings.includes(f.id));
  const summary = mine.length ? t("fileProblems", { n: mine.length }) : t("fileNoProblems");
  const figure = photoWithBoxes(file.image.id, file.image.width, file.image.height, mine, `${t("photo")} ${file.file}: ${summary}`);
  return h(
    "article",
    { class: "card file-result", dataset: { file: file.file } },
    h("h3", {}, file.file),
    h(
      "div",
      { class: "result-body" },
      figure,
      h(
        "div",
        { class: "result-list" },
        h("p", { class: "result-summary" }, summary),
        mine.length ? h("ol", { class: "problems" }, mine.map(problemItem)) : null,
        file.warnings.length ? h("p", { class: "muted" }, `${t("warnings")}: ${file.warnings.join("; ")}`) : null,
        labeller(figure, file.image, { level: 4 }),
      ),
    ),
  );
}

/** The results of `inspection` (InspectionOut) as cards, one per file, in upload order; `titled`: with its own heading. */
export function inspectionResults(inspection, titled = true) {
  const place = [inspection.region, inspection.township, inspection.village].filter(Boolean).join(" · ");
  return h(
    "section",
    { class: "inspection", dataset: { inspectionId: inspection.id }, "aria-label": t("inspection", { id: inspection.id }) },
    titled ? h("h2", { id: `insp-${inspection.id}` }, t("inspection", { id: inspection.id })) : null,
    h(
      "p",
      { class: "muted" },
      [place, inspection.created_by, formatTime(inspection.created_at)].filter(Boolean).join(" · "),
      " · ",
      h("a", { href: href("/findings", { inspection_id: inspection.id }) }, t("viewInLedger")),
    ),
    inspection.files.map((file) => fileCard(file, inspection.findings)),
  );
}

/** #/inspections/{id} */
export async function inspectionView(main, { params }) {
  const id = params[0];
  put(main, heading(t("inspection", { id })), loading());
  try {
    const inspection = await api(`/v1/inspections/${id}`);
    put(main, heading(t("inspection", { id })), inspectionResults(inspection, false));
  } catch (error) {
    put(main, heading(t("inspection", { id })), errorBox(error));
  }
}
