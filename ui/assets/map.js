// A map of the regions: an embedded low-resolution world outline (world.js, Natural Earth
// 1:110m) in an equirectangular projection, framed on the regions, with one point per region
// coloured by its trouble. No tiles, nothing loaded from elsewhere.

import { h, s } from "./dom.js";
import { WORLD } from "./world.js";
import { TROUBLE } from "./regions.js";

// The frame is never narrower than this (degrees), so a cluster of nearby regions still shows
// the coast and borders around it.
const MIN_SPAN_LON = 24;
const ASPECT = 2; // width / height of the frame
const PADDING = 0.25; // of the regions' own span, on each side

const x = (lon) => lon + 180;
const y = (lat) => WORLD.north - lat;

/** The viewBox framing `points` ({lon, lat}); the whole map when there are none. */
export function frame(points) {
  if (!points.length) return { x: 0, y: 0, width: WORLD.width, height: WORLD.height };
  const xs = points.map((p) => x(p.lon)), ys = points.map((p) => y(p.lat));
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  let width = Math.max(MIN_SPAN_LON, (maxX - minX) * (1 + 2 * PADDING));
  let height = Math.max((maxY - minY) * (1 + 2 * PADDING), width / ASPECT);
  width = Math.max(width, height * ASPECT);
  width = Math.min(width, WORLD.width);
  height = Math.min(height, WORLD.height);
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  const left = Math.min(Math.max(cx - width / 2, 0), WORLD.width - width);
  const top = Math.min(Math.max(cy - height / 2, 0), WORLD.height - height);
  return { x: left, y: top, width, height };
}

/**
 * The map of `regions` ({name, lat, lon, trouble, firing}), each a link to its page. Regions in
 * trouble are drawn last (on top) and named; the others are named in their tooltip.
 */
export function regionMap(regions) {
  const placed = regions.filter((r) => Number.isFinite(Number(r.lat)) && Number.isFinite(Number(r.lon)))
    .map((r) => ({ ...r, lat: Number(r.lat), lon: Number(r.lon) }));
  const view = frame(placed);
  const radius = view.width / 90;
  const svg = s("svg", {
    class: "region-map",
    viewBox: `${view.x.toFixed(2)} ${view.y.toFixed(2)} ${view.width.toFixed(2)} ${view.height.toFixed(2)}`,
    role: "img",
    "aria-label": `Map of ${placed.length} regions`,
  });
  svg.append(s("rect", { class: "sea", x: 0, y: 0, width: WORLD.width, height: WORLD.height }));
  svg.append(s("path", { class: "land", d: WORLD.land, "vector-effect": "non-scaling-stroke" }));
  const order = (r) => -TROUBLE.indexOf(r.trouble);
  const points = s("g", { class: "points" });
  const fontSize = view.width / 45;
  // The halo around a label, in the map's own units (a stroke in px would scale with the frame).
  const labels = s("g", { class: "labels", "font-size": fontSize.toFixed(3), "stroke-width": (fontSize / 5).toFixed(3) });
  for (const region of placed.slice().sort((a, b) => order(a) - order(b))) {
    const cx = x(region.lon), cy = y(region.lat);
    const firing = region.firing ? region.firing.length : 0;
    const tip = `${region.name}: ${region.trouble === "ok" ? "ok" : region.trouble}${firing ? `, ${firing} firing` : ""}`;
    points.append(s("a", { href: `/regions/${encodeURIComponent(region.name)}`, "data-nav": true, class: `point trouble-${region.trouble}`, dataset: { region: region.name } },
      s("title", null, tip),
      s("circle", { cx: cx.toFixed(3), cy: cy.toFixed(3), r: (region.trouble === "ok" ? radius : radius * 1.4).toFixed(3) })));
    if (region.trouble !== "ok") {
      labels.append(s("text", { x: (cx + radius * 1.9).toFixed(3), y: (cy + radius * 0.6).toFixed(3) }, region.name));
    }
  }
  svg.append(points, labels);
  return h("figure", { class: "map-box" }, svg,
    h("figcaption", { class: "legend" }, TROUBLE.filter((t) => t !== "info").map((t) => h("span", null, h("span", { class: `dot trouble-${t}` }), t))));
}
