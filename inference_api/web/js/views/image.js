// #/photos/{id}: one stored photo with its labels, to see and edit a label from the labels list.
// (The model's findings on a photo are shown with their inspection and on their own pages.)

import { api } from "../api.js";
import { h, put } from "../dom.js";
import { t } from "../i18n.js";
import { errorBox, heading, loading } from "./common.js";
import { labeller } from "./labeller.js";
import { photoWithBoxes } from "./photo.js";

export async function imageView(main, { params }) {
  const id = params[0];
  put(main, heading(t("photoTitle", { id })), loading());
  try {
    const image = await api(`/v1/images/${id}`);
    const figure = photoWithBoxes(image.id, image.width, image.height, [], t("photoTitle", { id }));
    put(
      main,
      heading(t("photoTitle", { id })),
      h("div", { class: "finding-layout" }, h("div", { class: "photos single" }, figure), h("div", { class: "side" }, labeller(figure, image, { level: 2 }))),
    );
  } catch (error) {
    put(main, heading(t("photoTitle", { id })), errorBox(error));
  }
}
