// A map of the regions: an embedded low-resolution world outline (world.js, Natural Earth
// 1:110m) in an equirectangular projection, framed on the regions, with one point per region
// coloured by its trouble. No tiles, nothing loaded from elsewhere.

import { h, s } from "./dom.js";
import { WORLD } from "./world.js";
import { TROUBLE } from "./regions.js";

// The frame is never narrower than this (degrees), so a cluster of nearby regions still shows
// the coast and borders around it.
const MIN_SPAN_LON = 10;
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
  const radius = view.width / 110;
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
  // Labels are placed worst first, right of their point or else left of it, and left out
  // where both would cover a label already placed (the tooltip still names the point).
  const taken = [];
  const place = (text, cx, cy, eastFirst) => {
    const w = text.length * fontSize * 0.62, hgt = fontSize * 1.1;
    const sides = [[cx + radius * 1.9, "start"], [cx - radius * 1.9 - w, "end"]];
    for (const [left, anchor] of eastFirst ? sides : sides.reverse()) {
      const box = { x0: left, x1: left + w, y0: cy - hgt * 0.6, y1: cy + hgt * 0.4 };
      if (taken.some((b) => box.x0 < b.x1 && b.x0 < box.x1 && box.y0 < b.y1 && b.y0 < box.y1)) continue;
      taken.push(box);
      return s("text", { x: (anchor === "start" ? left : left + w).toFixed(3), y: (cy + radius * 0.6).toFixed(3), "text-anchor": anchor }, text);
    }
    return null;
  };
  const inTrouble = placed.filter((r) => r.trouble !== "ok").sort((a, b) => TROUBLE.indexOf(a.trouble) - TROUBLE.indexOf(b.trouble));
  for (const region of inTrouble) {
    // Towards the side with fewer neighbours in trouble, so two close points can both be named.
    const near = inTrouble.filter((r) => r !== region && Math.abs(r.lat - region.lat) < fontSize * 2);
    const eastFirst = near.filter((r) => r.lon > region.lon).length <= near.filter((r) => r.lon < region.lon).length;
    const label = place(region.name, x(region.lon), y(region.lat), eastFirst);
    if (label) labels.append(label);
  }
  for (const region of placed.slice().sort((a, b) => order(a) - order(b))) {
    const cx = x(region.lon), cy = y(region.lat);
    const firing = region.firing ? region.firing.length : 0;
    const tip = `${region.name}: ${region.trouble === "ok" ? "ok" : region.trouble}${firing ? `, ${firing} firing` : ""}`;
    points.append(s("a", { href: `/regions/${encodeURIComponent(region.name)}`, "data-nav": true, class: `point trouble-${region.trouble}`, dataset: { region: region.name } },
      s("title", null, tip),
      s("circle", { cx: cx.toFixed(3), cy: cy.toFixed(3), r: (region.trouble === "ok" ? radius : radius * 1.4).toFixed(3) })));
  }
  svg.append(points, labels);
  return h("figure", { class: "map-box" }, svg,
    h("figcaption", { class: "legend" }, TROUBLE.filter((t) => t !== "info").map((t) => h("span", null, h("span", { class: `dot trouble-${t}` }), t))));
}
