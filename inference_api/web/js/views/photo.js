// A stored photo with boxes drawn over it. The boxes are SVG in the photo's own pixel space
// (the API gives boxes in pixels of the upright image, and browsers show photos upright), so
// they stay on their object at any size, and are numbered to match the list of problems.

import { imageUrl } from "../api.js";
import { h, s } from "../dom.js";
import { formatScore, typeName } from "../i18n.js";

/** Stroke width and tag text size in the photo's pixels, so boxes look alike on any photo at any size. */
export function overlayScale(width, height) {
  return {
    stroke: Math.max(2, Math.round(Math.max(width, height) / 220)),
    size: Math.max(12, Math.round(Math.max(width, height) / 22)),
  };
}

/**
 * <figure> with the image `imageId` (width × height pixels) and `boxes`: [{type, score, box}].
 * `alt` describes the photo; the numbers drawn match the order of `boxes`.
 */
export function photoWithBoxes(imageId, width, height, boxes, alt, caption) {
  const img = h("img", { alt, width, height, class: "photo-img", draggable: "false" });
  const { stroke, size } = overlayScale(width, height);
  const overlay = s(
    "svg",
    { class: "boxes", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", "aria-hidden": "true" },
    boxes.map((p, i) =>
      s(
        "g",
        { class: `box t-${p.type}` },
        s("rect", { x: p.box.x1, y: p.box.y1, width: p.box.x2 - p.box.x1, height: p.box.y2 - p.box.y1, "stroke-width": stroke }),
        s("rect", { class: "tag", x: p.box.x1, y: Math.max(0, p.box.y1 - size * 1.3), width: size * 4.2, height: size * 1.3 }),
        s("text", { x: p.box.x1 + size * 0.25, y: Math.max(0, p.box.y1 - size * 1.3) + size, "font-size": size }, `${i + 1} ${formatScore(p.score)}`),
        s("title", {}, `${typeName(p.type)} ${formatScore(p.score)}`),
      ),
    ),
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
