// The daily view (`/daily?from=now-7d&to=now`): per region and UTC day, the minimum, mean and
// maximum observed temperature, with the forecast's figures for the same day beside them
// (from `/api/daily`). The range is in the URL.

import { api, withQuery } from "./api.js";
import { h, replace, unavailable, stacked } from "./dom.js";

/** The ranges offered (the API takes up to 366 days). */
export const RANGES = [["now-7d", "Last 7 days"], ["now-14d", "Last 14 days"], ["now-30d", "Last 30 days"], ["now-90d", "Last 90 days"]];

export function render(main) {
  return new DailyPage(main);
}

const degrees = (v) => `${v.toFixed(1)} °C`;

/** `min / mean / max` of a day's figures, or a dash where there are none. */
export function figuresText(figures) {
  return figures ? `${degrees(figures.min)} / ${degrees(figures.mean)} / ${degrees(figures.max)}` : "–";
}

class DailyPage {
  constructor(main) {
    this.range = h("select", { id: "daily-range", onchange: () => this.go(this.range.value) },
      RANGES.map(([value, label]) => h("option", { value }, label)));
    this.body = h("div", { class: "daily-body" }, h("p", { class: "muted" }, "Loading…"));
    replace(main,
      h("h1", null, "Daily temperature"),
      h("p", { class: "muted" }, "Each region's observed minimum, mean and maximum per UTC day, and the forecast's for the same day where one covers it."),
      h("form", { class: "daily-controls", onsubmit: (e) => e.preventDefault() },
        h("div", { class: "field" }, h("label", { for: "daily-range" }, "Range"), this.range)),
      this.body);
    this.show();
  }

  go(from) {
    history.pushState(null, "", withQuery("/daily", { from }));
    this.show();
  }

  async show() {
    const params = new URLSearchParams(location.search);
    const from = params.get("from") || "now-7d";
    const to = params.get("to") || "now";
    if (![...this.range.options].some((o) => o.value === from)) this.range.append(h("option", { value: from }, `Since ${from}`));
    this.range.value = from;
    const controller = (this.controller = new AbortController());
    let answer;
    try {
      answer = await api(withQuery("/api/daily", { from, to }), { signal: controller.signal });
    } catch (err) {
      if (err.name !== "AbortError") replace(this.body, unavailable("Daily figures", err));
      return;
    }
    if (controller !== this.controller) return;
    const rows = answer.regions.flatMap((region) => region.days.slice().reverse().map((day) =>
      h("tr", { dataset: { region: region.region, date: day.date } },
        h("th", { scope: "row" }, region.region),
        h("td", { class: "date" }, day.date),
        h("td", { class: "num observed" }, figuresText(day.observed)),
        h("td", { class: "num" }, day.observed ? String(day.observed.count) : "0"),
        h("td", { class: "num forecast" }, figuresText(day.forecast)))));
    replace(this.body,
      h("p", { class: "muted", role: "status" }, `${answer.regions.length} regions, ${answer.from} to ${answer.to} (UTC days, newest first).`),
      h("div", { class: "table-wrap" }, stacked(h("table", { class: "daily", "aria-label": "Daily temperature per region" },
        h("thead", null, h("tr", null,
          h("th", { scope: "col" }, "Region"), h("th", { scope: "col" }, "Day"),
          h("th", { scope: "col", class: "num" }, "Observed min / mean / max"),
          h("th", { scope: "col", class: "num" }, "Observations"),
          h("th", { scope: "col", class: "num" }, "Forecast min / mean / max"))),
        h("tbody", null, rows)))));
  }

  stop() {
    if (this.controller) this.controller.abort();
  }

  /** Back/forward within the page. */
  update() {
    this.show();
  }
}
