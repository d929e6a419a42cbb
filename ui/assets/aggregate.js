// The search page's chart under the histogram: a metric of the hits over time (`count`, or
// avg/min/max/sum/p50/p95/p99 of a numeric field), one line per value of a "split by" field,
// from `/api/aggregate` with the page's query and range. Its state is in the page's URL
// (`metric=avg(temperature_c)&by=region`); without `metric` the chart is off.

import { api, withQuery } from "./api.js";
import { h, replace, unavailable } from "./dom.js";
import { lineChart, SERIES_COLOURS } from "./charts.js";
import { resolve } from "./time.js";

export const FUNCTIONS = ["count", "avg", "min", "max", "sum", "p50", "p95", "p99"];
/** The numeric fields the indexer aggregates and sorts by (its observation metrics). */
export const NUMERIC_FIELDS = ["temperature_c", "feels_like_c", "humidity_pct", "pressure_hpa", "dew_point_c", "wind_speed_ms", "wind_deg", "wind_gust_ms", "clouds_pct", "visibility_m", "uvi"];
/** The fields a chart splits by (the indexer's term fields). */
export const SPLIT_FIELDS = ["region", "kind", "level", "service", "source"];

/** `avg(temperature_c)` as {fn: "avg", field: "temperature_c"}; `count` as {fn: "count"}; else null. */
export function parseMetric(text) {
  if (text === "count") return { fn: "count", field: null };
  const match = /^([a-z0-9]+)\(([a-z_]+)\)$/.exec(text || "");
  if (!match || !FUNCTIONS.includes(match[1]) || match[1] === "count" || !NUMERIC_FIELDS.includes(match[2])) return null;
  return { fn: match[1], field: match[2] };
}

export function metricText({ fn, field }) {
  return fn === "count" ? "count" : `${fn}(${field})`;
}

/** The chart's points as the line chart draws them, from the API's series. */
export function readSeries(answer) {
  return answer.series.map((one) => ({
    // The other series (hits outside the top values) and the one series without `by` have
    // no key of their own.
    key: one.other ? "other" : one.key === null ? answer.metric : one.key,
    other: one.other,
    points: one.points.map((p) => ({ t: Date.parse(p.start), v: p.value, count: p.count })),
  }));
}

export class AggregateChart {
  /** `onChange(metric, by)` is called with the new choice (the page puts it in its URL). */
  constructor(onChange) {
    this.onChange = onChange;
    this.controller = null;
    const changed = () => {
      const fn = this.fn.value;
      this.field.disabled = fn === "" || fn === "count";
      this.by.disabled = fn === "";
      this.onChange(fn === "" ? "" : metricText({ fn, field: this.field.value }), fn === "" ? "" : this.by.value);
    };
    this.fn = h("select", { id: "chart-metric", class: "small", onchange: changed },
      h("option", { value: "" }, "off"), FUNCTIONS.map((fn) => h("option", { value: fn }, fn)));
    this.field = h("select", { id: "chart-field", class: "small", onchange: changed }, NUMERIC_FIELDS.map((f) => h("option", { value: f }, f)));
    this.by = h("select", { id: "chart-by", class: "small", onchange: changed },
      h("option", { value: "" }, "none"), SPLIT_FIELDS.map((f) => h("option", { value: f }, f)));
    this.note = h("span", { class: "muted chart-note", role: "status" });
    this.plot = h("div", { class: "aggregate-plot" });
    this.legend = h("ul", { class: "legend", "aria-label": "Series" });
    this.element = h("div", { class: "panel aggregate", "aria-label": "Chart of a metric over time" },
      h("div", { class: "histogram-bar chart-bar" },
        h("label", { for: "chart-metric" }, "Chart"), this.fn,
        h("label", { for: "chart-field" }, "of"), this.field,
        h("label", { for: "chart-by" }, "split by"), this.by,
        this.note),
      this.plot, this.legend);
  }

  /** Shows the chart of `state` (`metric`, `by`, `from`, `to`) for the query `q`. */
  async update(state, q) {
    const metric = parseMetric(state.metric);
    this.fn.value = metric ? metric.fn : "";
    if (metric && metric.field) this.field.value = metric.field;
    this.field.disabled = !metric || metric.fn === "count";
    this.by.value = metric && SPLIT_FIELDS.includes(state.by) ? state.by : "";
    this.by.disabled = !metric;
    if (this.controller) this.controller.abort();
    if (!metric) {
      this.plot.replaceChildren();
      this.legend.replaceChildren();
      this.note.textContent = "";
      this.element.classList.add("off");
      return;
    }
    this.element.classList.remove("off");
    const controller = (this.controller = new AbortController());
    const interval = state.interval && state.interval !== "auto" ? state.interval : undefined;
    const url = withQuery("/api/aggregate", { q, from: state.from, to: state.to, interval, metric: metricText(metric), by: this.by.value || undefined });
    this.note.textContent = "Loading…";
    let answer;
    try {
      answer = await api(url, { signal: controller.signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      // A query the search refuses is said once, above the results; the chart only points there.
      const aboutQuery = err.status === 400 && err.detail && typeof err.detail === "object" && (err.detail.position || err.detail.parameter === "q");
      replace(this.plot, aboutQuery ? h("p", { class: "muted" }, "No chart: the search could not run.") : unavailable("Chart", err));
      this.legend.replaceChildren();
      this.note.textContent = "";
      return;
    }
    if (controller !== this.controller) return;
    this.last = [readSeries(answer), state];
    this.draw();
    this.note.textContent = `${answer.metric}${answer.by ? ` by ${answer.by}` : ""}, ${answer.interval} per point`;
  }

  /** Draws the last answer again (the page's width changed). */
  draw() {
    if (!this.last) return;
    const [series, state] = this.last;
    const from = resolve(state.from), to = resolve(state.to);
    const now = Date.now();
    lineChart(this.plot, series, { from: from ? from.getTime() : now - 15 * 60e3, to: to ? to.getTime() : now });
    replace(this.legend, series.map((one, i) => h("li", { dataset: { key: one.key } },
      h("span", { class: `swatch series-${i % SERIES_COLOURS}`, "aria-hidden": "true" }), one.other ? "other values" : one.key)));
  }

  stop() {
    if (this.controller) this.controller.abort();
  }
}
