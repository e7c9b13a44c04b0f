// A stored photo with boxes drawn over it. The boxes are SVG in the photo's own pixel space
// (the API gives boxes in pixels of the upright image, and browsers show photos upright), so
// they stay on their object at any size, and are numbered to match the list of problems.
// A whole-photo problem (extent "photo": the classifier saw it, no box says where) is drawn as a
// dashed frame just inside the photo's edge, its tag saying so. An approximate one (extent
// "approx": a type learned from photo labels, the box where its evidence lies) is dotted, "≈" on its tag.

import { imageUrl } from "../api.js";
import { h, s } from "../dom.js";
import { formatScore, t, typeName } from "../i18n.js";

/** Stroke width and tag text size in the photo's pixels, so boxes look alike on any photo at any size. */
export function overlayScale(width, height) {
  return {
    stroke: Math.max(2, Math.round(Math.max(width, height) / 220)),
    size: Math.max(12, Math.round(Math.max(width, height) / 22)),
  };
}

/** Width of a tag holding `text` at font `size` (CJK characters are about square, others narrower). */
export function tagWidth(text, size) {
  return size * (0.6 + [...text].reduce((sum, ch) => sum + (/[\u2e80-\uffef]/.test(ch) ? 1 : 0.62), 0));
}

/** One problem's <g>: its box (or the photo's inner edge for a whole-photo one), a numbered tag and a title. */
function drawn(p, i, width, height, stroke, size) {
  const whole = p.extent === "photo";
  const b = whole ? { x1: stroke / 2, y1: stroke / 2, x2: width - stroke / 2, y2: height - stroke / 2 } : p.box;
  const tagY = whole ? stroke : Math.max(0, b.y1 - size * 1.3);
  const approx = p.extent === "approx";
  const text = `${i + 1} ${approx ? "≈ " : ""}${formatScore(p.score)}${whole ? ` · ${t("extentPhoto")}` : ""}`;
  const dashes = whole ? `${stroke * 4} ${stroke * 2}` : approx ? `${stroke} ${stroke * 1.5}` : null;
  const note = whole ? ` (${t("extentPhoto")})` : approx ? ` (${t("extentApprox")})` : "";
  return s(
    "g",
    { class: `box t-${p.type}${whole ? " whole" : ""}${approx ? " approx" : ""}` },
    s("rect", { x: b.x1, y: b.y1, width: b.x2 - b.x1, height: b.y2 - b.y1, "stroke-width": stroke, ...(dashes ? { "stroke-dasharray": dashes } : {}) }),
    s("rect", { class: "tag", x: b.x1, y: tagY, width: whole || approx ? tagWidth(text, size) : size * 4.2, height: size * 1.3 }),
    s("text", { x: b.x1 + size * 0.25, y: tagY + size, "font-size": size }, text),
    s("title", {}, `${typeName(p.type)} ${formatScore(p.score)}${note}`),
  );
}

/**
 * <figure> with the image `imageId` (width × height pixels) and `boxes`: [{type, score, box, extent}].
 * `alt` describes the photo; the numbers drawn match the order of `boxes`.
 */
export function photoWithBoxes(imageId, width, height, boxes, alt, caption) {
  const img = h("img", { alt, width, height, class: "photo-img", draggable: "false" });
  const { stroke, size } = overlayScale(width, height);
  const overlay = s(
    "svg",
    { class: "boxes", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", "aria-hidden": "true" },
    boxes.map((p, i) => drawn(p, i, width, height, stroke, size)),
  );
  const frame = h("div", { class: "frame" }, img, overlay);
  imageUrl(`/v1/images/${imageId}/original`)
    .then((url) => { img.src = url; })
    .catch(() => {});
  // A format the browser cannot show (TIFF): the server's JPEG with the same boxes drawn in.
  img.addEventListener("error", () => {
    overlay.remove();
    imageUrl(`/v1/images/${imageId}/annotated.jpg`).then((url) => { img.src = url; }).catch(() => {});
  }, { once: true });
  return h("figure", { class: "photo", dataset: { imageId, boxes: boxes.length } }, frame, caption ? h("figcaption", {}, caption) : null);
}
