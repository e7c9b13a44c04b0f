// #/photos/{id}: one stored photo with the model's findings on it (from every inspection that sent
// it) and its labels, to see and edit a label from the labels list.

import { api } from "../api.js";
import { h, put } from "../dom.js";
import { t } from "../i18n.js";
import { errorBox, heading, loading } from "./common.js";
import { problemItem } from "./inspection.js";
import { labeller } from "./labeller.js";
import { photoLabelPanel } from "./photolabels.js";
import { photoWithBoxes } from "./photo.js";

export async function imageView(main, { params }) {
  const id = params[0];
  put(main, heading(t("photoTitle", { id })), loading());
  try {
    const [image, page] = await Promise.all([api(`/v1/images/${id}`), api(`/v1/findings?image_id=${id}&limit=1000`)]);
    const findings = page.items;
    const summary = findings.length ? t("fileProblems", { n: findings.length }) : t("fileNoProblems");
    const figure = photoWithBoxes(image.id, image.width, image.height, findings, `${t("photoTitle", { id })}: ${summary}`);
    put(
      main,
      heading(t("photoTitle", { id })),
      h(
        "div",
        { class: "finding-layout" },
        h("div", { class: "photos single" }, figure),
        h(
          "div",
          { class: "side" },
          h("p", { class: "result-summary" }, summary),
          findings.length ? h("ol", { class: "problems" }, findings.map(problemItem)) : null,
          labeller(figure, image, { level: 2 }),
          photoLabelPanel(image.id),
        ),
      ),
    );
  } catch (error) {
    put(main, heading(t("photoTitle", { id })), errorBox(error));
  }
}
