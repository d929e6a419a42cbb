// Small SVG charts: the search histogram (drag to zoom), sparklines, and the region chart
// of observed temperature with the forecast and its prediction band.

import { s } from "./dom.js";
import { formatTime, tickLabel } from "./time.js";

/**
 * About `count` round tick values covering [min, max]. With `integer` (counts), every tick is
 * a whole number: no 0.5 or 2.5 hits.
 */
export function niceTicks(min, max, count = 5, { integer = false } = {}) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= raw) || raw;
  if (integer) step = Math.max(1, Number.isInteger(step) ? step : Math.ceil(step / magnitude / 5) * 5 * magnitude);
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toFixed(10)));
  return ticks;
}

/** Time ticks at round intervals over [from, to] (ms). */
export function timeTicks(from, to, count = 6) {
  const span = to - from;
  const steps = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800].map((x) => x * 1000);
  const step = steps.find((st) => span / st <= count) || steps[steps.length - 1];
  const offset = new Date(from).getTimezoneOffset() * 60e3;
  const ticks = [];
  for (let t = Math.ceil((from - offset) / step) * step + offset; t <= to; t += step) ticks.push(t);
  return ticks;
}

function widthOf(container, fallback) {
  const width = container ? container.getBoundingClientRect().width : 0;
  return Math.max(200, Math.round(width || fallback));
}

/**
 * Draws the hit histogram into `container`. `buckets` are {start (ms), count}; dragging
 * across it (or clicking a bar) calls onZoom(fromMs, toMs).
 */
export function histogram(container, buckets, { from, to, interval, onZoom }) {
  const width = widthOf(container, 900);
  const height = 140;
  const pad = { left: 40, right: 8, top: 8, bottom: 22 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const step = interval > 0 ? interval : buckets.length > 1 ? buckets[1].start - buckets[0].start : Math.max(1, (to - from) / 60);
  const start = Math.min(from, buckets.length ? buckets[0].start : from);
  const end = Math.max(to, buckets.length ? buckets[buckets.length - 1].start + step : to);
  const span = Math.max(1, end - start);
  const x = (t) => pad.left + ((t - start) / span) * innerW;
  const highest = Math.max(1, ...buckets.map((b) => b.count));
  const log = skewed(buckets.map((b) => b.count));
  let countTicks, y;
  if (log) {
    // Powers of ten up to one at or above the highest bar; a bar of 1 still shows.
    countTicks = [0, 1];
    while (countTicks[countTicks.length - 1] < highest) countTicks.push(countTicks[countTicks.length - 1] * 10);
    const top = Math.log10(1 + countTicks[countTicks.length - 1]);
    y = (c) => pad.top + innerH - (Math.log10(1 + c) / top) * innerH;
  } else {
    // The scale ends on a round tick at or above the highest bar, so the top is labelled.
    countTicks = niceTicks(0, highest, 3, { integer: true });
    const tickStep = countTicks.length > 1 ? countTicks[1] - countTicks[0] : highest;
    while (countTicks[countTicks.length - 1] < highest) countTicks.push(countTicks[countTicks.length - 1] + tickStep);
    const maxCount = Math.max(highest, countTicks[countTicks.length - 1]);
    y = (c) => pad.top + innerH - (c / maxCount) * innerH;
  }

  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", dataset: { scale: log ? "log" : "linear" }, "aria-label": `Histogram of hits over time, ${buckets.length} buckets, at most ${highest} per bucket${log ? ", counts on a log scale" : ""}` });
  const axis = s("g", { class: "axis" });
  for (const tick of countTicks) {
    axis.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }));
    axis.append(s("text", { class: "count-tick", x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end" }, compactCount(tick)));
  }
  for (const tick of timeTicks(start, end, Math.max(2, Math.floor(innerW / 110)))) {
    if (x(tick) > width - pad.right - 30) continue;
    axis.append(s("text", { x: x(tick), y: height - 6, "text-anchor": "middle" }, tickLabel(new Date(tick), span)));
  }
  svg.append(axis);

  const bars = s("g", { class: "bars" });
  const barWidth = Math.max(1, (step / span) * innerW - 1);
  for (const bucket of buckets) {
    if (!bucket.count) continue;
    const top = y(bucket.count);
    bars.append(
      s("rect", { class: "bar", x: x(bucket.start), y: top, width: barWidth, height: Math.max(1, pad.top + innerH - top), dataset: { start: bucket.start, end: bucket.start + step } },
        s("title", null, `${bucket.count} hits from ${formatTime(bucket.start)}`)),
    );
  }
  svg.append(bars);

  const brush = s("rect", { class: "brush", x: 0, y: pad.top, width: 0, height: innerH, visibility: "hidden" });
  svg.append(brush);

  // Drag to select a range; a click without dragging zooms into the bar under it.
  const timeAt = (clientX) => {
    const box = svg.getBoundingClientRect();
    const px = Math.min(Math.max(clientX - box.left, pad.left), width - pad.right);
    return start + ((px - pad.left) / innerW) * span;
  };
  let anchor = null;
  svg.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    anchor = { clientX: event.clientX, time: timeAt(event.clientX), target: event.target };
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener("pointermove", (event) => {
    if (!anchor) return;
    const a = x(anchor.time), b = x(timeAt(event.clientX));
    brush.setAttribute("x", Math.min(a, b));
    brush.setAttribute("width", Math.abs(b - a));
    brush.setAttribute("visibility", "visible");
  });
  const finish = (event) => {
    if (!anchor) return;
    const moved = Math.abs(event.clientX - anchor.clientX) > 4;
    const startTime = anchor.time, target = anchor.target;
    anchor = null;
    brush.setAttribute("visibility", "hidden");
    if (moved) {
      const t = timeAt(event.clientX);
      onZoom(Math.min(startTime, t), Math.max(startTime, t));
    } else if (target instanceof SVGRectElement && target.classList.contains("bar")) {
      onZoom(Number(target.dataset.start), Number(target.dataset.end));
    }
  };
  svg.addEventListener("pointerup", finish);
  svg.addEventListener("pointercancel", () => { anchor = null; brush.setAttribute("visibility", "hidden"); });
  container.replaceChildren(svg);
  return { log };
}

/**
 * Whether counts are too uneven for a linear scale: the tallest bar over 10 times the typical
 * (median) non-empty one, which it would draw a few pixels high. So it is when 7 days of
 * hourly history sit beside minutes of 10-second data: whatever the interval, a bucket of
 * the recent data holds hundreds of times more events than one of the history.
 */
export function skewed(counts) {
  const nonEmpty = counts.filter((c) => c > 0).sort((a, b) => a - b);
  if (nonEmpty.length < 3) return false;
  const median = nonEmpty[Math.floor(nonEmpty.length / 2)];
  return nonEmpty[nonEmpty.length - 1] > 10 * median;
}

/** `950`, `12k`, `1.5M`: axis labels that fit the margin. */
function compactCount(n) {
  if (n >= 1e6) return `${Number((n / 1e6).toFixed(1))}M`;
  if (n >= 1e4) return `${Number((n / 1e3).toFixed(0))}k`;
  return String(n);
}

function linePath(points, x, y) {
  let path = "";
  let pen = "M";
  for (const p of points) {
    if (!Number.isFinite(p.v)) { pen = "M"; continue; }
    path += `${pen}${x(p.t).toFixed(1)} ${y(p.v).toFixed(1)}`;
    pen = "L";
  }
  return path;
}

/** A small line of `points` ({t, v}); x spans the data itself. */
export function sparkline(points, { label }) {
  const width = 220, height = 36;
  const svg = s("svg", { class: "sparkline", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img", "aria-label": label });
  if (points.length < 2) return svg;
  const ts = points.map((p) => p.t), vs = points.map((p) => p.v).filter(Number.isFinite);
  const t0 = Math.min(...ts), t1 = Math.max(...ts);
  const v0 = Math.min(...vs), v1 = Math.max(...vs);
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0)) * (width - 2) + 1;
  const y = (v) => height - 3 - ((v - v0) / Math.max(0.1, v1 - v0)) * (height - 6);
  svg.append(s("path", { d: linePath(points, x, y), "vector-effect": "non-scaling-stroke" }));
  return svg;
}

/**
 * Observed temperatures ({t, v}) and a forecast ({t, v, lo, hi}) on one time axis, with the
 * prediction band shaded and "now" marked.
 */
export function temperatureChart(container, { observed, forecast, now = Date.now() }) {
  const width = widthOf(container, 900);
  const height = 320;
  const pad = { left: 44, right: 12, top: 12, bottom: 26 };
  const all = [...observed.map((p) => p.t), ...forecast.map((p) => p.t)];
  const values = [
    ...observed.map((p) => p.v),
    ...forecast.flatMap((p) => [p.v, p.lo, p.hi]),
  ].filter(Number.isFinite);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Temperature: ${observed.length} observations and ${forecast.length} forecast points` });
  if (!all.length || !values.length) {
    container.replaceChildren(svg);
    return;
  }
  const t0 = Math.min(...all), t1 = Math.max(...all, t0 + 1);
  let v0 = Math.min(...values), v1 = Math.max(...values);
  if (v1 - v0 < 2) { v0 -= 1; v1 += 1; }
  // Widen the scale to round ticks so the band never runs past the last gridline.
  const step = niceTicks(v0, v1, 5);
  if (step.length > 1) {
    const gap = step[1] - step[0];
    v0 = Math.floor(v0 / gap) * gap;
    v1 = Math.ceil(v1 / gap) * gap;
  }
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - v0) / (v1 - v0)) * (height - pad.top - pad.bottom);

  const grid = s("g", { class: "grid" });
  const axis = s("g", { class: "axis" });
  for (const tick of niceTicks(v0, v1, 5)) {
    grid.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }));
    axis.append(s("text", { x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end" }, `${tick}°`));
  }
  for (const tick of timeTicks(t0, t1, Math.max(2, Math.floor(width / 120)))) {
    if (x(tick) < pad.left + 20 || x(tick) > width - pad.right - 30) continue; // a label cut by the edge helps nobody
    axis.append(s("text", { x: x(tick), y: height - 6, "text-anchor": "middle" }, tickLabel(new Date(tick), t1 - t0)));
  }
  svg.append(grid, axis);

  const banded = forecast.filter((p) => Number.isFinite(p.lo) && Number.isFinite(p.hi));
  if (banded.length > 1) {
    const upper = banded.map((p) => `${x(p.t).toFixed(1)} ${y(p.hi).toFixed(1)}`);
    const lower = banded.slice().reverse().map((p) => `${x(p.t).toFixed(1)} ${y(p.lo).toFixed(1)}`);
    svg.append(s("path", { class: "band", d: `M${upper.join("L")}L${lower.join("L")}Z` }, s("title", null, "Prediction interval")));
  }
  if (forecast.length) svg.append(s("path", { class: "series-forecast", d: linePath(forecast, x, y) }, s("title", null, "Forecast")));
  if (observed.length) svg.append(s("path", { class: "series-observed", d: linePath(observed, x, y) }, s("title", null, "Observed")));
  if (now >= t0 && now <= t1) {
    svg.append(s("g", { class: "now" }, s("line", { x1: x(now), x2: x(now), y1: pad.top, y2: height - pad.bottom }), s("text", { x: x(now) + 4, y: pad.top + 10 }, "now")));
  }
  container.replaceChildren(svg);
}

/** Series colours, cycled: distinct in both themes (the stylesheet sets them per index). */
export const SERIES_COLOURS = 8;

/**
 * One line per series over time (`series`: [{key, points: [{t, v}]}], v null where a bucket
 * has no value), with a legend naming each series. Returns how many lines were drawn.
 */
export function lineChart(container, series, { from, to, unit = "" }) {
  const width = widthOf(container, 900);
  const height = 200;
  const pad = { left: 48, right: 8, top: 8, bottom: 22 };
  const values = series.flatMap((one) => one.points.map((p) => p.v)).filter(Number.isFinite);
  const times = series.flatMap((one) => one.points.map((p) => p.t));
  const t0 = Math.min(from, ...times), t1 = Math.max(to, ...times, t0 + 1);
  let v0 = values.length ? Math.min(...values) : 0, v1 = values.length ? Math.max(...values) : 1;
  if (v0 > 0 && v0 < v1 / 2) v0 = 0; // counts and the like start at 0
  if (v1 - v0 < 1e-9) { v0 -= 1; v1 += 1; }
  const ticks = niceTicks(v0, v1, 4);
  if (ticks.length > 1) {
    const gap = ticks[1] - ticks[0];
    v0 = Math.floor(v0 / gap) * gap;
    v1 = Math.ceil(v1 / gap) * gap;
  }
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - v0) / (v1 - v0)) * (height - pad.top - pad.bottom);
  const svg = s("svg", { class: "chart lines", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", dataset: { series: String(series.length) }, "aria-label": `${series.length} series over time` });
  const grid = s("g", { class: "grid" });
  const axis = s("g", { class: "axis" });
  for (const tick of niceTicks(v0, v1, 4)) {
    grid.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }));
    axis.append(s("text", { x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end" }, `${compactValue(tick)}${unit}`));
  }
  for (const tick of timeTicks(t0, t1, Math.max(2, Math.floor(width / 120)))) {
    if (x(tick) < pad.left + 20 || x(tick) > width - pad.right - 30) continue;
    axis.append(s("text", { x: x(tick), y: height - 6, "text-anchor": "middle" }, tickLabel(new Date(tick), t1 - t0)));
  }
  svg.append(grid, axis);
  series.forEach((one, i) => {
    const line = s("path", { class: `series series-${i % SERIES_COLOURS}`, d: linePath(one.points, x, y), dataset: { key: one.key } }, s("title", null, one.key));
    svg.append(line);
    // A lone value between gaps draws no line: a dot shows it.
    one.points.forEach((p, j) => {
      const alone = Number.isFinite(p.v) && !Number.isFinite(one.points[j - 1]?.v) && !Number.isFinite(one.points[j + 1]?.v);
      if (alone) svg.append(s("circle", { class: `series-dot series-${i % SERIES_COLOURS}`, cx: x(p.t), cy: y(p.v), r: 2.5 }));
    });
  });
  container.replaceChildren(svg);
  return series.length;
}

/** `27.4`, `1.2k`: a value axis label that fits the margin. */
function compactValue(n) {
  if (Math.abs(n) >= 1e4) return compactCount(n);
  return String(Number(n.toFixed(2)));
}
