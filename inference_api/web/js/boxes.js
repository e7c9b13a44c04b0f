// Box geometry in a photo's own pixels ({x1, y1, x2, y2}, the API's boxes), shared by mouse,
// touch and keyboard editing. Every change goes through clampBox, so whatever the input, a box
// is whole pixels, at least 1 px wide and high, and inside the photo: what the labels API accepts.

/** `box` with its corners in order, rounded to whole pixels, inside width × height, at least 1 px each way. */
export function clampBox(box, width, height) {
  const axis = (a, b, size) => {
    let lo = Math.round(Math.min(Math.max(Math.min(a, b), 0), size));
    let hi = Math.round(Math.min(Math.max(Math.max(a, b), 0), size));
    if (hi - lo < 1) [lo, hi] = hi < size ? [lo, lo + 1] : [size - 1, size];
    return [lo, hi];
  };
  const [x1, x2] = axis(box.x1, box.x2, width);
  const [y1, y2] = axis(box.y1, box.y2, height);
  return { x1, y1, x2, y2 };
}

/** The box spanned by two points (a drag from `a` to `b`, either direction). */
export function boxFromPoints(a, b, width, height) {
  return clampBox({ x1: a.x, y1: a.y, x2: b.x, y2: b.y }, width, height);
}

/** `box` moved by (dx, dy), same size, stopped at the photo's edges. */
export function movedBox(box, dx, dy, width, height) {
  const w = box.x2 - box.x1;
  const hgt = box.y2 - box.y1;
  const x1 = Math.min(Math.max(box.x1 + dx, 0), width - w);
  const y1 = Math.min(Math.max(box.y1 + dy, 0), height - hgt);
  return clampBox({ x1, y1, x2: x1 + w, y2: y1 + hgt }, width, height);
}

/** `box` with its `corner` ("nw", "ne", "sw" or "se") dragged to `point`; the opposite corner stays. */
export function resizedBox(box, corner, point, width, height) {
  const next = { ...box };
  next[corner.includes("w") ? "x1" : "x2"] = point.x;
  next[corner.includes("n") ? "y1" : "y2"] = point.y;
  return clampBox(next, width, height);
}

/** A keyboard step: 1% of the photo's longer side (at least 1 px), ten times that with Shift. */
export function keyStep(width, height, large) {
  return Math.max(1, Math.round(Math.max(width, height) / 100)) * (large ? 10 : 1);
}

/** Where the keyboard's "new box" starts: a quarter of the photo each way, in the middle. */
export function defaultBox(width, height) {
  const w = Math.max(1, Math.round(width / 4));
  const hgt = Math.max(1, Math.round(height / 4));
  const x1 = Math.round((width - w) / 2);
  const y1 = Math.round((height - hgt) / 2);
  return clampBox({ x1, y1, x2: x1 + w, y2: y1 + hgt }, width, height);
}

const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

/**
 * `box` after the arrow key `key`: moved, or with `resize` (Ctrl or ⌘ held) its bottom-right
 * corner moved (right and down grow it); `large` (Shift) takes bigger steps. Null for other keys.
 */
export function keyedBox(box, key, { large = false, resize = false }, width, height) {
  const arrow = ARROWS[key];
  if (!arrow) return null;
  const step = keyStep(width, height, large);
  const [dx, dy] = [arrow[0] * step, arrow[1] * step];
  if (!resize) return movedBox(box, dx, dy, width, height);
  const x2 = Math.max(box.x1 + 1, Math.min(box.x2 + dx, width));
  const y2 = Math.max(box.y1 + 1, Math.min(box.y2 + dy, height));
  return clampBox({ ...box, x2, y2 }, width, height);
}
