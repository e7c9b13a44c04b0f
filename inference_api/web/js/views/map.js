// #/map: findings with a position as points on a plain plane, drawn offline (no map tiles exist
// without the internet). Longitude is scaled by cos(latitude), which keeps distances and
// angles true enough across a county; a graticule and a scale bar give the bearings. Fill says
// the type, the ring the status; every point is a link (keyboard-focusable) to its finding.
// A position from the phone rather than the photo's GPS has a dashed ring and a dashed circle
// as large as the accuracy the phone reported, so nobody reads it as exact.

import { api, query as qs } from "../api.js";
import { h, put, s } from "../dom.js";
import { problemTypes, STATUSES, statusName, t, typeName } from "../i18n.js";
import { href } from "../router.js";
import { errorBox, heading, loading, positionName } from "./common.js";
import { apiFilters, filterForm } from "./filters.js";
import { knownRegions } from "./ledger.js";

const W = 1000;
const H = 625;
const MARGIN = 40;
const MIN_SPAN = 0.002;
const KM_PER_DEGREE = 111.32;

/** A "nice" step (1, 2 or 5 × 10ⁿ) giving about `count` intervals over `span`. */
function niceStep(span, count) {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

/** lon/lat → viewBox x/y for the points' bounds, and back out the bounds for the graticule. */
function projection(coords) {
  const lats = coords.map((c) => c[1]);
  const lons = coords.map((c) => c[0]);
  const k = Math.cos(((Math.min(...lats) + Math.max(...lats)) / 2) * (Math.PI / 180));
  const [cx, cy] = [(Math.min(...lons) + Math.max(...lons)) / 2, (Math.min(...lats) + Math.max(...lats)) / 2];
  const spanX = Math.max((Math.max(...lons) - Math.min(...lons)) * k, MIN_SPAN);
  const spanY = Math.max(Math.max(...lats) - Math.min(...lats), MIN_SPAN);
  const scale = Math.min((W - 2 * MARGIN) / spanX, (H - 2 * MARGIN) / spanY);
  return {
    k,
    scale,
    x: (lon) => W / 2 + (lon - cx) * k * scale,
    y: (lat) => H / 2 - (lat - cy) * scale,
    lon: (x) => cx + (x - W / 2) / (k * scale),
    lat: (y) => cy - (y - H / 2) / scale,
  };
}

function graticule(p) {
  const lines = [];
  const [lon0, lon1, lat0, lat1] = [p.lon(0), p.lon(W), p.lat(H), p.lat(0)];
  const step = niceStep(Math.max(lat1 - lat0, (lon1 - lon0) * p.k), 6);
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  for (let lon = Math.ceil(lon0 / step) * step; lon <= lon1; lon += step) {
    const x = p.x(lon);
    lines.push(s("line", { class: "grid", x1: x, x2: x, y1: 0, y2: H }));
    if (x < W - 90) lines.push(s("text", { class: "grid-label", x: x + 3, y: H - 6 }, `${lon.toFixed(digits)}°E`));
  }
  for (let lat = Math.ceil(lat0 / step) * step; lat <= lat1; lat += step) {
    lines.push(s("line", { class: "grid", x1: 0, x2: W, y1: p.y(lat), y2: p.y(lat) }), s("text", { class: "grid-label", x: 4, y: p.y(lat) - 4 }, `${lat.toFixed(digits)}°N`));
  }
  return lines;
}

function scaleBar(p) {
  const kmPerUnit = KM_PER_DEGREE / p.scale;
  const km = niceStep(kmPerUnit * 160, 1);
  const length = km / kmPerUnit;
  const text = km >= 1 ? `${km} km` : `${Math.round(km * 1000)} m`;
  return s(
    "g",
    { class: "scale" },
    s("line", { x1: W - MARGIN - length, x2: W - MARGIN, y1: H - 36, y2: H - 36 }),
    s("text", { x: W - MARGIN - length, y: H - 42 }, text),
    s("text", { class: "north", x: W - MARGIN, y: 30, "text-anchor": "end" }, `↑ ${t("north")}`),
  );
}

/**
 * `size` is view units per screen pixel: a phone draws the 1000-unit plane in under 400 px, so
 * points are made at least 9 px in radius (about a fingertip across) wherever it is drawn.
 */
function points(features, p, focus, size) {
  const r = Math.max(10, 9 * size);
  const spread = 1.6 * r;
  const seen = new Map();
  return features.map((feature) => {
    const [lon, lat] = feature.geometry.coordinates;
    const f = feature.properties;
    // Findings of one photo share its GPS fix: fan them out so each stays clickable.
    const spot = `${lon.toFixed(6)},${lat.toFixed(6)}`;
    const n = seen.get(spot) || 0;
    seen.set(spot, n + 1);
    const angle = n * 2.4;
    const [x, y] = [p.x(lon) + (n ? spread * Math.cos(angle) * Math.sqrt(n) : 0), p.y(lat) + (n ? spread * Math.sin(angle) * Math.sqrt(n) : 0)];
    const device = f.position_source === "device";
    const label = `#${f.id} ${typeName(f.type)} · ${statusName(f.status)} · ${positionName(f.position_source, f.position_accuracy_m)}`;
    // The accuracy circle is where the phone might have been: centred on the reported spot, in map units.
    const radius = device && f.position_accuracy_m ? (f.position_accuracy_m / 1000 / KM_PER_DEGREE) * p.scale : 0;
    return s(
      "a",
      { href: href(`/findings/${f.id}`), class: `point${String(f.id) === focus ? " focused" : ""}`, "aria-label": label, dataset: { findingId: f.id, status: f.status, type: f.type, source: f.position_source } },
      radius ? s("circle", { class: `accuracy t-${f.type}`, cx: p.x(lon).toFixed(1), cy: p.y(lat).toFixed(1), r: radius.toFixed(1) }) : null,
      s("circle", { class: `pt t-${f.type} s-${f.status}${device ? " device" : ""}`, cx: x.toFixed(1), cy: y.toFixed(1), r: (String(f.id) === focus ? 1.4 * r : r).toFixed(1) }),
      s("title", {}, label),
    );
  });
}

function legend() {
  return h(
    "div",
    { class: "legend" },
    h("div", {}, h("h2", {}, t("legendType")), h("ul", {}, problemTypes().map((p) => h("li", {}, h("span", { class: `swatch t-${p.key}`, "aria-hidden": "true" }), typeName(p.key))))),
    h("div", {}, h("h2", {}, t("legendStatus")), h("ul", {}, STATUSES.map((st) => h("li", {}, h("span", { class: `ring s-${st}`, "aria-hidden": "true" }), statusName(st))))),
    h("div", {}, h("h2", {}, t("legendPosition")), h("ul", {}, h("li", {}, h("span", { class: "swatch photo", "aria-hidden": "true" }), t("mapPhotoGps")), h("li", {}, h("span", { class: "swatch device", "aria-hidden": "true" }), t("mapDevice")))),
  );
}

export async function mapView(main, { query }) {
  put(main, heading(t("mapTitle")), loading());
  try {
    const [collection, regions] = await Promise.all([api(`/v1/findings.geojson${qs(apiFilters(query))}`), knownRegions()]);
    const features = collection.features;
    let drawing = h("p", { class: "muted" }, t("mapEmpty"));
    if (features.length) {
      const p = projection(features.map((f) => f.geometry.coordinates));
      drawing = s(
        "svg",
        { class: "map", viewBox: `0 0 ${W} ${H}`, role: "group", "aria-label": t("mapLabel") },
        s("rect", { class: "plane", x: 0, y: 0, width: W, height: H }),
        graticule(p),
        scaleBar(p),
        points(features, p, query.focus, W / Math.max(1, main.clientWidth)),
      );
    }
    put(
      main,
      heading(t("mapTitle")),
      filterForm("/map", query, regions),
      h("p", { class: "muted" }, t("mapHint")),
      h("p", { class: "count", id: "map-count", dataset: { count: features.length } }, t("mapCount", { n: features.length })),
      h("div", { class: "map-wrap" }, drawing),
      legend(),
    );
    const focused = main.querySelector("a.point.focused");
    if (focused) focused.focus();
  } catch (error) {
    put(main, heading(t("mapTitle")), errorBox(error));
  }
}
