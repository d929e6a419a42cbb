// The search page (`/search`): query bar, time picker, histogram, facets and results, with
// the whole state in the URL (`/search?q=region:Dakar&from=now-1h&to=now&filter=level:warn`).

import { api, withQuery } from "./api.js";
import { h, replace, announce, unavailable } from "./dom.js";
import { histogram } from "./charts.js";
import { AggregateChart } from "./aggregate.js";
import { fieldExplorer, fieldStats, sortable, sortFor, valueOf } from "./fields.js";
import { SavedSearches, queryHistory, remember } from "./saved.js";
import { AlertRuleForm } from "./alert_rule.js";
import { PRESETS, duration, formatTime, isRelative, parseLocalInput, resolve, rfc3339, toLocalInput } from "./time.js";

export const FACET_FIELDS = ["kind", "region", "level", "service"];
const PAGE_SIZE = 100;
/** The page's own path: every URL it writes is built on it (links to `/?q=` are redirected). */
export const SEARCH_PATH = "/search";
/** How many values a facet lists before "show all". */
export const FACET_TOP = 10;
/** The histogram's intervals: `auto` lets the indexer choose; the others are its `interval`. */
export const INTERVALS = [["auto", "Auto"], ["1m", "1 minute"], ["1h", "1 hour"], ["1d", "1 day"]];
const INTERVAL_MS = { "1m": 60e3, "1h": 3600e3, "1d": 86400e3 };
/** The most extra columns a search shows (each a field of the hits). */
export const MAX_COLUMNS = 8;
/** The indexer's bound on buckets (`windsock_indexer::search::MAX_BUCKETS`; `tests/ui_bounds.rs` holds them equal): an interval that would give
 * more over the range is offered disabled, saying why, rather than answered with a 400. */
export const MAX_BUCKETS = 2000;

// ---- State <-> URL -------------------------------------------------------------------

/** The search state carried by a URL's query string. */
export function stateFromUrl(search) {
  const params = new URLSearchParams(search);
  const pairs = (name) =>
    params.getAll(name).map((raw) => {
      const at = raw.indexOf(":");
      return at > 0 ? { field: raw.slice(0, at), value: raw.slice(at + 1) } : null;
    }).filter(Boolean);
  return {
    q: params.get("q") || "",
    from: params.get("from") || "now-15m",
    to: params.get("to") || "now",
    filters: pairs("filter"),
    excludes: pairs("exclude"),
    live: params.get("live") === "1",
    sort: params.get("sort") || "",
    // Extra columns: fields of the hits (`col=temperature_c&col=condition`), in order.
    columns: [...new Set(params.getAll("col").filter((c) => /^[\w.-]{1,100}$/.test(c)))].slice(0, MAX_COLUMNS),
    // The chart under the histogram (`metric=avg(temperature_c)&by=region`); none: off.
    metric: params.get("metric") || "",
    by: params.get("by") || "",
    interval: INTERVALS.some(([value]) => value === params.get("interval")) ? params.get("interval") : "auto",
    limit: Math.max(1, Math.min(1000, Number(params.get("limit")) || PAGE_SIZE)),
  };
}

export function urlFromState(state) {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  params.set("from", state.from);
  params.set("to", state.to);
  for (const f of state.filters) params.append("filter", `${f.field}:${f.value}`);
  for (const f of state.excludes) params.append("exclude", `${f.field}:${f.value}`);
  if (state.live) params.set("live", "1");
  if (state.sort) params.set("sort", state.sort);
  for (const column of state.columns || []) params.append("col", column);
  if (state.metric) params.set("metric", state.metric);
  if (state.metric && state.by) params.set("by", state.by);
  if (state.interval && state.interval !== "auto") params.set("interval", state.interval);
  if (state.limit !== PAGE_SIZE) params.set("limit", String(state.limit));
  return `${SEARCH_PATH}?${params}`;
}

/** A value as a quoted term of the query language. */
export function quoteTerm(value) {
  return `"${String(value).replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The query sent to the API: the typed query with the facet filters ANDed on. */
export function effectiveQuery(state) {
  const typed = state.q.trim();
  const terms = [
    ...state.filters.map((f) => `${f.field}:${quoteTerm(f.value)}`),
    ...state.excludes.map((f) => `NOT ${f.field}:${quoteTerm(f.value)}`),
  ];
  if (!terms.length) return typed || "*";
  const parts = [];
  if (typed && typed !== "*") parts.push(`(${typed})`);
  if (!parts.length && !state.filters.length) parts.push("*"); // only exclusions: all minus them
  return [...parts, ...terms].join(" AND ");
}

// ---- Reading the API's answer (the fields /api/openapi.json documents) ----------------

/** The histogram's buckets (`{start, count}`), oldest first. */
export function readHistogram(answer) {
  return answer.histogram.buckets
    .map((b) => ({ start: Date.parse(b.start), count: b.count }))
    .filter((b) => Number.isFinite(b.start))
    .sort((a, b) => a.start - b.start);
}

/** What a hit shows in its message column: its message, or an observation's readings. */
function messageOf(hit) {
  if (hit.message) return hit.message;
  const event = hit.event;
  if (event.temperature_c !== undefined) {
    return [`${event.temperature_c} °C`, event.humidity_pct !== undefined ? `${event.humidity_pct}% humidity` : null, event.wind_speed_ms !== undefined ? `wind ${event.wind_speed_ms} m/s` : null, event.condition]
      .filter(Boolean).join(" · ");
  }
  return "";
}

// Hits carry `timestamp`, `kind`, `region` (null for events of no region), `level`, `message`.
const field = (hit, name) => hit[name] ?? "";

// ---- The page ------------------------------------------------------------------------

export function render(main, ctx) {
  const page = new SearchPage(main, ctx);
  page.show(stateFromUrl(location.search));
  return page;
}

class SearchPage {
  constructor(main, ctx) {
    this.ctx = ctx;
    this.expanded = new Set();
    this.loaded = []; // the hits shown, for the field explorer
    this.fieldsOpen = new Set(); // the explorer's fields shown open
    this.controller = null;
    this.timer = null;
    this.build(main);
    this.loadRegions();
  }

  /** The configured regions, so the region facet can list the ones without hits (the silent
   * ones are those people look for). Without them the facet lists what the hits have. */
  async loadRegions() {
    try {
      const answer = await api("/api/regions");
      this.regionNames = answer.regions.map((r) => r.name);
      if (this.lastFacets) this.renderFacets(this.lastFacets);
    } catch {
      this.regionNames = null;
    }
  }

  build(main) {
    this.query = h("input", { id: "q", name: "q", type: "search", autocomplete: "off", spellcheck: "false", placeholder: 'region:Dakar AND temperature_c:[30 TO *]   ( / to focus )', "aria-describedby": "query-error", "aria-label": "Search query" });
    this.range = h("select", { id: "range", "aria-label": "Time range" });
    // Text boxes, not datetime-local: that one shows the locale's 12-hour clock (AM/PM).
    const timeBox = (id) => h("input", { id, type: "text", autocomplete: "off", spellcheck: "false", size: "19", placeholder: "YYYY-MM-DD HH:MM:SS", title: "Local time, 24-hour: 2026-11-25 14:00:00" });
    this.fromInput = timeBox("from");
    this.toInput = timeBox("to");
    this.custom = h("div", { class: "custom-range", hidden: true },
      h("div", { class: "field" }, h("label", { for: "from" }, "From"), this.fromInput),
      h("div", { class: "field" }, h("label", { for: "to" }, "To"), this.toInput));
    this.liveButton = h("button", { type: "button", class: "ghost", id: "live", "aria-pressed": "false", title: `Refresh every ${this.ctx.liveSeconds} s`, onclick: () => this.toggleLive() }, "● Live");
    // The queries run in this browser: picking one puts it in the box and runs it.
    this.historyList = h("select", { id: "query-history", class: "small", "aria-label": "Recent queries", onchange: () => {
      if (!this.historyList.value) return;
      this.query.value = this.historyList.value;
      this.historyList.value = "";
      this.submit();
    } });
    this.form = h("form", { class: "searchbar", role: "search", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      h("div", { class: "field query" }, h("label", { for: "q" }, "Query"), this.query, this.historyList),
      h("div", { class: "field" }, h("label", { for: "range" }, "Time range"), this.range),
      this.custom,
      h("button", { type: "submit" }, "Search"),
      this.liveButton);
    this.range.addEventListener("change", () => {
      const custom = this.range.value === "custom";
      this.custom.hidden = !custom;
      if (custom) {
        const now = Date.now();
        const from = resolve(this.state.from) || new Date(now - 15 * 60e3);
        this.fromInput.value = toLocalInput(from);
        this.toInput.value = toLocalInput(resolve(this.state.to) || new Date(now));
        this.fromInput.focus();
      } else {
        this.submit();
      }
    });
    this.error = h("div", { id: "query-error", class: "query-error error-box", role: "alert", hidden: true });
    this.filterBar = h("div", { class: "filters", "aria-label": "Active filters" });
    this.status = h("div", { class: "status-line", role: "status" });
    // Downloads of every hit of the search (plain links: the browser streams the file).
    this.csvLink = h("a", { class: "button ghost small export-link", id: "export-csv", download: "" }, "CSV");
    this.ndjsonLink = h("a", { class: "button ghost small export-link", id: "export-ndjson", download: "" }, "NDJSON");
    this.tools = h("div", { class: "search-tools" }, h("span", { class: "muted" }, "Download every hit:"), this.csvLink, this.ndjsonLink);
    this.aggregate = new AggregateChart((metric, by) => this.go({ ...this.state, metric, by }));
    this.fields = h("div", { class: "field-explorer" });
    this.saved = new SavedSearches({
      current: () => ({ query: effectiveQuery(this.state) === "*" ? "" : effectiveQuery(this.state), from: this.state.from, to: this.state.to, columns: this.state.columns }),
      open: (saved) => {
        this.query.value = saved.query;
        this.go({ ...stateFromUrl(""), q: saved.query, from: saved.from || "now-15m", to: saved.to || "now", columns: saved.columns || [] });
      },
    });
    this.facets = h("aside", { class: "facets", "aria-label": "Top values" });
    this.chart = h("div", { class: "histogram", tabindex: "0", role: "group", "aria-label": "Hits over time. Left and right arrows move the range, plus and minus zoom.", onkeydown: (e) => this.onHistogramKey(e) });
    this.zoomOut = h("button", { type: "button", class: "ghost small", onclick: () => this.zoomOutRange() }, "Zoom out");
    this.interval = h("select", { id: "interval", class: "small", "aria-label": "Histogram interval", onchange: () => this.go({ ...this.state, interval: this.interval.value }) },
      INTERVALS.map(([value, label]) => h("option", { value }, label)));
    this.regionNames = null; // every configured region, once /api/regions answers
    this.facetsOpen = new Set(); // facets showing every value
    this.tbody = h("tbody");
    this.more = h("div", { class: "more" });
    const table = h("table", { class: "results", "aria-label": "Search results" },
      h("thead", null, h("tr", null,
        h("th", { scope: "col", class: "col-expand" }, h("span", { class: "visually-hidden" }, "Expand")),
        (this.timeHeader = h("th", { scope: "col", class: "col-time", "aria-sort": "descending" },
          (this.sortButton = h("button", { type: "button", class: "sort", title: "Change the order", onclick: () => this.toggleSort() }, "Time ↓")))),
        h("th", { scope: "col", class: "col-kind" }, "Kind"),
        h("th", { scope: "col", class: "col-region" }, "Region"),
        h("th", { scope: "col", class: "col-level" }, "Level"),
        (this.messageHeader = h("th", { scope: "col" }, "Message")))),
      this.tbody);
    this.tbody.addEventListener("click", (event) => this.onTableClick(event));
    // The histogram is drawn to the pixel width it has: redraw it when that changes.
    this.onResize = () => {
      clearTimeout(this.resizeTimer);
      this.resizeTimer = setTimeout(() => { if (this.lastHistogram) this.renderHistogram(...this.lastHistogram); this.aggregate.draw(); }, 150);
    };
    window.addEventListener("resize", this.onResize);
    replace(main,
      h("h1", { class: "visually-hidden" }, "Search events"),
      this.form, this.error, this.filterBar, this.status, this.tools,
      (this.layout = h("div", { class: "search-layout" },
        h("div", { class: "sidebar" }, this.saved.element, new AlertRuleForm(() => effectiveQuery(this.state)).element, this.facets, this.fields),
        h("section", { "aria-label": "Results" },
          h("div", { class: "panel" },
            h("div", { class: "histogram-bar" }, h("label", { for: "interval" }, "Interval"), this.interval, (this.intervalNote = h("span", { class: "muted interval-note" }))),
            this.chart,
            h("p", { class: "histogram-hint" }, "Drag across the chart, or click a bar, to zoom in (keys: ← → + −). ", this.zoomOut)),
          this.aggregate.element,
          h("div", { class: "results-wrap" }, table),
          this.more))));
  }

  /** Shows `state` (from the URL) and runs it. */
  show(state) {
    state = this.fitInterval(state);
    if (this.intervalDropped) history.replaceState(null, "", urlFromState(state));
    this.state = state;
    this.query.value = state.q;
    this.fillRange(state);
    this.fillInterval(state);
    this.renderFilters();
    this.renderColumns();
    this.showSort();
    this.setLive(state.live);
    this.fillHistory();
    this.run();
  }

  fillRange(state) {
    replace(this.range, PRESETS.map(([value, label]) => h("option", { value }, label)));
    const preset = state.to === "now" && PRESETS.some(([value]) => value === state.from);
    if (!preset && isRelative(state.from) && state.to === "now") {
      this.range.append(h("option", { value: state.from }, `Since ${state.from}`));
    }
    this.range.append(h("option", { value: "custom" }, "Absolute range…"));
    const absolute = !(isRelative(state.from) && state.to === "now");
    this.range.value = absolute ? "custom" : state.from;
    this.custom.hidden = !absolute;
    if (absolute) {
      const from = resolve(state.from), to = resolve(state.to);
      if (from) this.fromInput.value = toLocalInput(from);
      if (to) this.toInput.value = toLocalInput(to);
    }
  }

  /**
   * `state`, with an interval too fine for its range (more buckets than the indexer allows,
   * as after zooming out with `1m`) given back to `auto`, which the histogram's line says.
   */
  fitInterval(state) {
    const width = INTERVAL_MS[state.interval];
    const from = resolve(state.from), to = resolve(state.to);
    this.intervalDropped = width && from && to && Math.ceil((to - from) / width) > MAX_BUCKETS ? state.interval : null;
    return this.intervalDropped ? { ...state, interval: "auto" } : state;
  }

  /** The interval selector for `state`: an interval giving more buckets than the indexer
   * allows over the range is disabled, with the reason. */
  fillInterval(state) {
    const from = resolve(state.from), to = resolve(state.to);
    const span = from && to ? to - from : 0;
    for (const option of this.interval.options) {
      const width = INTERVAL_MS[option.value];
      const buckets = width ? Math.ceil(span / width) : 0;
      const tooMany = buckets > MAX_BUCKETS;
      option.disabled = tooMany;
      option.title = tooMany ? `${buckets.toLocaleString()} buckets over this range; at most ${MAX_BUCKETS.toLocaleString()}` : "";
    }
    this.interval.value = state.interval;
  }

  /** Reads the form into a new state and runs it (a new history entry when it changed). */
  submit() {
    const next = { ...this.state, q: this.query.value.trim(), limit: this.state.limit };
    if (this.range.value === "custom") {
      const from = this.fromInput.value.trim() ? parseLocalInput(this.fromInput.value) : null;
      const to = this.toInput.value.trim() ? parseLocalInput(this.toInput.value) : new Date();
      const unreadable = [[this.fromInput, from], [this.toInput, to]].find(([input, date]) => input.value.trim() && !date);
      if (unreadable) {
        const [input] = unreadable;
        this.showFormError(`${input.id === "from" ? "From" : "To"}: “${input.value.trim()}” is not a time; write it as 2026-11-25 14:00:00 (local time, 24-hour)`, input);
        return;
      }
      if (from) next.from = rfc3339(from);
      next.to = rfc3339(to);
    } else {
      next.from = this.range.value;
      next.to = "now";
    }
    this.go(next);
  }

  go(next) {
    next = this.fitInterval(next);
    this.state = next;
    this.expanded.clear();
    const url = urlFromState(next);
    if (url !== location.pathname + location.search) history.pushState(null, "", url);
    this.fillRange(next);
    this.fillInterval(next);
    this.renderFilters();
    this.renderColumns();
    this.showSort();
    this.fillHistory(remember(next.q));
    this.run();
  }

  addFilter(fieldName, value, exclude) {
    const same = (f) => f.field === fieldName && f.value === value;
    const next = { ...this.state, filters: this.state.filters.filter((f) => !same(f)), excludes: this.state.excludes.filter((f) => !same(f)) };
    (exclude ? next.excludes : next.filters).push({ field: fieldName, value });
    this.go(next);
  }

  renderFilters() {
    // An exclusion reads as what it does, "NOT region: Dakar": struck-through text is how
    // Kibana shows a filter switched off, the opposite of what it means here.
    const pill = (f, exclude) => h("span", { class: `pill${exclude ? " exclude" : ""}` },
      h("span", { class: "pill-text" }, exclude ? [h("strong", { class: "not" }, "NOT"), " "] : null, `${f.field}: ${f.value}`),
      h("button", { type: "button", "aria-label": `${exclude ? "Include" : "Exclude"} ${f.field} ${f.value} instead`, title: "Invert", onclick: () => this.addFilter(f.field, f.value, !exclude) }, "⇄"),
      h("button", { type: "button", "aria-label": `Remove filter ${f.field} ${f.value}`, title: "Remove", onclick: () => this.go({ ...this.state, filters: this.state.filters.filter((x) => x !== f), excludes: this.state.excludes.filter((x) => x !== f) }) }, "×"));
    replace(this.filterBar, this.state.filters.map((f) => pill(f, false)), this.state.excludes.map((f) => pill(f, true)));
  }

  toggleSort() {
    this.go({ ...this.state, sort: this.state.sort === "" ? "oldest" : "" });
  }

  /** Sorts by a numeric field, highest first when `descending`. */
  sortBy(name, descending) {
    this.go({ ...this.state, sort: sortFor(name, descending), live: false });
    this.setLive(false);
  }

  showSort() {
    const oldest = this.state.sort === "oldest";
    const byField = this.state.sort.includes(":");
    if (byField) this.timeHeader.removeAttribute("aria-sort");
    else this.timeHeader.setAttribute("aria-sort", oldest ? "ascending" : "descending");
    this.sortButton.textContent = byField ? "Time" : oldest ? "Time ↑" : "Time ↓";
    this.sortButton.setAttribute("aria-label", byField ? `Sorted by ${this.state.sort}: show newest first` : oldest ? "Time, oldest first: show newest first" : "Time, newest first: show oldest first");
  }

  /** Keys on the focused histogram: ← → move the range by a quarter, + zooms in, − zooms out. */
  onHistogramKey(event) {
    const from = resolve(this.state.from), to = resolve(this.state.to);
    if (!from || !to) return;
    const span = to - from;
    let next = null;
    if (event.key === "ArrowLeft") next = [from - span / 4, to - span / 4];
    else if (event.key === "ArrowRight") next = [from.getTime() + span / 4, Math.min(Date.now(), to.getTime() + span / 4)];
    else if (event.key === "+" || event.key === "=") next = [from.getTime() + span / 4, to - span / 4];
    else if (event.key === "-" || event.key === "_") return void (event.preventDefault(), this.zoomOutRange());
    if (!next) return;
    event.preventDefault();
    if (next[1] - next[0] < 1000) return;
    this.go({ ...this.state, from: rfc3339(new Date(next[0])), to: rfc3339(new Date(next[1])), live: false });
    this.setLive(false);
  }

  zoomOutRange() {
    const from = resolve(this.state.from), to = resolve(this.state.to);
    if (!from || !to) return;
    const span = to - from;
    const end = Math.min(Date.now(), to.getTime() + span / 2);
    this.go({ ...this.state, from: rfc3339(new Date(end - span * 2)), to: rfc3339(new Date(end)) });
  }

  // ---- Columns, fields, history, downloads, the chart ----

  /** The extra columns' headers (a numeric one sorts the hits by it), before Message. */
  renderColumns() {
    const row = this.messageHeader.parentNode;
    for (const old of row.querySelectorAll("th.col-extra")) old.remove();
    for (const column of this.state.columns) {
      const down = sortable(column) && this.state.sort === sortFor(column, true);
      const up = sortable(column) && this.state.sort === sortFor(column, false);
      const label = h("span", null, column);
      const header = h("th", { scope: "col", class: "col-extra", dataset: { column }, "aria-sort": down ? "descending" : up ? "ascending" : null },
        sortable(column)
          ? h("button", { type: "button", class: "sort", title: "Sort by this field", onclick: () => this.sortBy(column, !down) }, label, down ? " ↓" : up ? " ↑" : "")
          : label,
        h("button", { type: "button", class: "ghost small column-remove", "aria-label": `Remove the column ${column}`, onclick: () => this.setColumn(column, false) }, "×"));
      row.insertBefore(header, this.messageHeader);
    }
    this.layout.classList.toggle("with-columns", this.state.columns.length > 0);
  }

  setColumn(name, add) {
    const columns = this.state.columns.filter((c) => c !== name);
    if (add) columns.push(name);
    this.go({ ...this.state, columns: columns.slice(0, MAX_COLUMNS) });
  }

  renderFields() {
    const stats = fieldStats(this.loaded, this.lastFacets || {});
    this.fields.replaceChildren(fieldExplorer(stats, this.loaded.length, {
      columns: this.state.columns,
      sort: this.state.sort,
      open: this.fieldsOpen,
      onColumn: (name, add) => this.setColumn(name, add),
      onSort: (name, descending) => this.sortBy(name, descending),
      onFilter: (name, value, exclude) => this.addFilter(name, value, exclude),
      filterable: (name) => FACET_FIELDS.includes(name) || name === "source",
    }));
  }

  fillHistory(list = queryHistory()) {
    replace(this.historyList, h("option", { value: "" }, `Recent (${list.length})`), list.map((q) => h("option", { value: q }, q)));
    this.historyList.disabled = !list.length;
  }

  /** The download links and the chart, for the search about to run. */
  updateTools(quiet) {
    const q = effectiveQuery(this.state);
    for (const [link, format] of [[this.csvLink, "csv"], [this.ndjsonLink, "ndjson"]]) {
      link.href = withQuery("/api/export", { q: q === "*" ? undefined : q, from: this.state.from, to: this.state.to, format });
    }
    // Live refreshes redraw the chart too, but not more often than every third refresh.
    this.liveRuns = quiet ? (this.liveRuns || 0) + 1 : 0;
    if (!quiet || this.liveRuns % 3 === 0) this.aggregate.update(this.state, q);
  }

  // ---- Live mode ----

  toggleLive() {
    const next = { ...this.state, live: !this.state.live };
    this.state = next;
    history.replaceState(null, "", urlFromState(next));
    this.setLive(next.live);
    announce(next.live ? "Live mode on" : "Live mode paused");
  }

  setLive(on) {
    this.liveButton.setAttribute("aria-pressed", String(on));
    this.liveButton.textContent = on ? "❚❚ Pause" : "● Live";
    clearInterval(this.timer);
    this.timer = on ? setInterval(() => { if (!document.hidden) this.run({ quiet: true }); }, this.ctx.liveSeconds * 1000) : null;
  }

  // ---- Running a search ----

  async run({ quiet = false, append = false } = {}) {
    if (this.controller) this.controller.abort();
    const controller = (this.controller = new AbortController());
    const offset = append ? this.shown : 0;
    // The API refuses `offset + limit` past its result window: the last page stops at it.
    const limit = Math.min(this.state.limit, this.ctx.resultWindow - offset);
    const url = withQuery("/api/search", { q: effectiveQuery(this.state), from: this.state.from, to: this.state.to, limit, offset: offset || undefined, sort: this.state.sort, interval: this.state.interval === "auto" ? undefined : this.state.interval });
    if (!quiet && !append) this.status.replaceChildren(h("span", null, "Searching…"));
    if (!append) this.updateTools(quiet);
    let answer;
    try {
      answer = await api(url, { signal: controller.signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      const shown = await this.typedQueryError(err, controller);
      if (controller === this.controller) this.showError(shown);
      return;
    }
    if (controller !== this.controller) return;
    const started = performance.now();
    this.error.hidden = true;
    this.layout.classList.remove("stale");
    this.query.removeAttribute("aria-invalid");
    this.fromInput.removeAttribute("aria-invalid");
    this.toInput.removeAttribute("aria-invalid");
    const hits = answer.hits;
    if (append) {
      this.appendRows(hits);
      this.shown += hits.length;
    } else {
      this.total = answer.total;
      this.renderFacets(answer.facets);
      this.renderHistogram(readHistogram(answer), answer.histogram.interval_ms);
      this.tbody.replaceChildren();
      this.loaded = [];
      this.appendRows(hits);
      this.shown = hits.length;
    }
    this.loaded.push(...hits);
    // The field explorer after the rows have painted: they are what is looked at first.
    clearTimeout(this.fieldsTimer);
    this.fieldsTimer = setTimeout(() => this.renderFields(), 0);
    this.renderMore();
    void this.tbody.offsetHeight; // include style and layout in the measured time, not just DOM building
    const renderMs = performance.now() - started;
    document.body.dataset.renderMs = renderMs.toFixed(1);
    document.body.dataset.searches = String(Number(document.body.dataset.searches || 0) + 1);
    const notes = [];
    if (answer.limit_clamped) notes.push(`limit lowered to ${answer.limit_clamped.max}`);
    replace(this.status,
      h("span", null, h("strong", { id: "hit-total" }, this.total.toLocaleString()), ` hits`),
      h("span", null, `search ${answer.took_ms.toFixed(1)} ms`),
      h("span", null, `rendered in ${renderMs.toFixed(0)} ms`),
      h("span", null, `${formatTime(resolve(this.state.from))} → ${formatTime(resolve(this.state.to))}`),
      notes.map((n) => h("span", { class: "bad" }, n)));
    if (!quiet) announce(`${this.total} hits`);
  }

  /**
   * With filters on, the query sent is `(typed) AND filters`, and an error's position is in
   * that: a stray `)` in what was typed even closes the added `(`, so the error lands on
   * another character. The typed query alone, asked once more, gives the position in what
   * was typed; the first error stands if that one parses or fails otherwise.
   */
  async typedQueryError(err, controller) {
    const typed = this.state.q.trim();
    const placed = (e) => e.status === 400 && e.detail && typeof e.detail === "object" && e.detail.position;
    if (!placed(err) || !typed || effectiveQuery(this.state) === typed) return err;
    try {
      await api(withQuery("/api/search", { q: typed, from: this.state.from, to: this.state.to, limit: 0 }), { signal: controller.signal });
    } catch (alone) {
      if (placed(alone)) return alone;
    }
    return err;
  }

  showError(err) {
    this.error.textContent = describeError(err);
    this.error.hidden = false;
    this.layout.classList.add("stale"); // the results below are from the previous search
    if (err.status === 400) this.query.setAttribute("aria-invalid", "true");
    // The caret in the box too, when the error is about what is in it.
    const detail = err.detail && typeof err.detail === "object" ? err.detail : null;
    const typed = this.query.value;
    if (detail && detail.position && detail.query === typed.trim() && document.activeElement === this.query) {
      const at = Math.max(0, Math.min(typed.length, typed.indexOf(detail.query) + detail.position.column - 1));
      this.query.setSelectionRange(at, Math.min(typed.length, at + 1));
    }
    this.status.replaceChildren(h("span", { class: "bad" }, err.status === 400 ? "The search could not run." : "Search unavailable."));
  }

  /** A problem found before asking the API (an unreadable time), shown where its errors are. */
  showFormError(message, input) {
    this.error.textContent = message;
    this.error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }

  renderFacets(facets) {
    this.lastFacets = facets;
    const blocks = FACET_FIELDS.map((name) => {
      const values = facetValues(facets[name] || [], name === "region" ? this.regionNames : null);
      const top = Math.max(1, ...values.map((v) => v.count));
      const open = this.facetsOpen.has(name);
      const shown = open ? values : values.slice(0, FACET_TOP);
      const toggle = values.length > FACET_TOP
        ? h("button", { type: "button", class: "ghost small facet-more", "aria-expanded": String(open), onclick: () => {
            if (open) this.facetsOpen.delete(name); else this.facetsOpen.add(name);
            this.renderFacets(this.lastFacets);
          } }, open ? `show top ${FACET_TOP}` : `show all (${values.length})`)
        : null;
      return h("section", { class: "panel facet", "aria-label": `Top ${name} values`, dataset: { facet: name } },
        h("h3", null, name),
        values.length
          ? h("ul", null, shown.map((v) => h("li", { class: v.count ? null : "zero", dataset: { facet: name, value: v.value } },
              h("span", { class: "value", title: v.count ? v.value : `${v.value}: no hits in this range` }, v.value),
              h("span", { class: "count" }, v.count.toLocaleString()),
              h("button", { type: "button", class: "ghost small facet-include", "aria-label": `Filter for ${name}: ${v.value}`, title: "Filter for this value", onclick: () => this.addFilter(name, v.value, false) }, "+"),
              h("button", { type: "button", class: "ghost small facet-exclude", "aria-label": `Filter out ${name}: ${v.value}`, title: "Filter out this value", onclick: () => this.addFilter(name, v.value, true) }, "−"),
              h("span", { class: "share", "aria-hidden": "true" }, shareBar(v.count / top)))))
          : h("p", { class: "muted" }, "no values"),
        toggle);
    });
    this.facets.replaceChildren(...blocks);
  }

  renderHistogram(buckets, interval) {
    this.lastHistogram = [buckets, interval];
    const from = resolve(this.state.from), to = resolve(this.state.to);
    const drawn = histogram(this.chart, buckets, {
      interval,
      from: from ? from.getTime() : Date.now() - 15 * 60e3,
      to: to ? to.getTime() : Date.now(),
      onZoom: (a, b) => {
        if (b - a < 1000) b = a + 1000;
        this.go({ ...this.state, from: rfc3339(new Date(Math.floor(a / 1000) * 1000)), to: rfc3339(new Date(Math.ceil(b / 1000) * 1000)), live: false });
        this.setLive(false);
      },
    });
    const dropped = this.intervalDropped ? ` (${this.intervalDropped} would be more than ${MAX_BUCKETS.toLocaleString()} bars over this range)` : "";
    this.intervalNote.textContent = `${duration(interval)} per bar${dropped}${drawn.log ? " · counts on a log scale (the tallest bar dwarfs the rest)" : ""}`;
  }

  renderMore() {
    const remaining = this.total - this.shown;
    const room = this.ctx.resultWindow - this.shown;
    if (remaining > 0 && room > 0) {
      replace(this.more, h("button", { type: "button", class: "ghost", onclick: () => this.run({ append: true }) }, `Show ${Math.min(remaining, this.state.limit, room)} more of ${remaining.toLocaleString()}`));
    } else if (remaining > 0) {
      replace(this.more, this.pastTheWindow());
    } else {
      replace(this.more, this.shown ? h("span", { class: "muted" }, "End of results") : h("p", { class: "notice" }, "No events match this search in this time range."));
    }
  }

  /** Past the result window, paging by offset ends: a new search narrowed to end (or start,
   * oldest first) at the last hit shown reaches the rest. */
  pastTheWindow() {
    if (this.state.sort.includes(":")) {
      // Sorted by a field, the hits past the window have no time to continue from.
      return h("p", { class: "notice window-end", role: "status" },
        `${this.shown.toLocaleString()} hits shown, the most one search pages through: narrow the query or the time range to see the rest.`);
    }
    const oldest = this.state.sort === "oldest";
    // Millisecond precision: hits in the same second as the last one must not be skipped.
    const at = new Date(Date.parse(this.lastHit.timestamp)).toISOString();
    const next = oldest ? { ...this.state, from: at, live: false } : { ...this.state, to: at, live: false };
    return h("p", { class: "notice window-end", role: "status" },
      `${this.shown.toLocaleString()} hits shown, the most one search pages through: narrow the time range to see ${oldest ? "newer" : "older"} ones. `,
      h("button", { type: "button", class: "ghost small", onclick: () => { this.setLive(false); this.go(next); } }, "Continue from the last hit shown"));
  }

  // ---- Rows ----

  /** Appends one row per hit: cloned from one template row and filled by textContent. */
  appendRows(hits) {
    const template = rowTemplate(this.state.columns.length);
    const fragment = document.createDocumentFragment();
    const reopen = [];
    for (const hit of hits) {
      const row = template.cloneNode(true);
      const cells = row.children;
      const level = String(field(hit, "level") || "");
      row.className = `hit${level ? ` lvl-${level}` : ""}`;
      row.dataset.id = hit.id;
      row.hitData = hit;
      cells[1].firstChild.textContent = formatTime(field(hit, "timestamp"), { millis: true });
      cells[1].lastChild.textContent = [field(hit, "kind"), field(hit, "region")].filter(Boolean).join(" · ");
      cells[2].textContent = field(hit, "kind");
      cells[3].textContent = field(hit, "region");
      cells[4].firstChild.textContent = level;
      cells[4].firstChild.className = `level ${level}`;
      this.state.columns.forEach((column, i) => {
        const cell = cells[5 + i];
        cell.textContent = valueOf(hit, column);
        cell.dataset.label = column;
      });
      cells[5 + this.state.columns.length].textContent = messageOf(hit);
      fragment.append(row);
      if (this.expanded.has(row.dataset.id)) reopen.push(row);
    }
    this.tbody.append(fragment);
    if (hits.length) this.lastHit = hits[hits.length - 1];
    for (const row of reopen) this.expand(row);
  }

  onTableClick(event) {
    if (event.target.closest("tr.detail")) return;
    const row = event.target.closest("tr.hit");
    if (!row) return;
    // Selecting text in a row should not toggle it; the expander button always does.
    if (!event.target.closest(".expander") && window.getSelection().toString()) return;
    if (row.nextSibling && row.nextSibling.classList && row.nextSibling.classList.contains("detail")) {
      row.nextSibling.remove();
      row.querySelector(".expander").setAttribute("aria-expanded", "false");
      row.querySelector(".expander").textContent = "▸";
      this.expanded.delete(row.dataset.id);
    } else {
      this.expand(row);
      this.expanded.add(row.dataset.id);
    }
  }

  expand(row) {
    const hit = row.hitData;
    const expander = row.querySelector(".expander");
    expander.setAttribute("aria-expanded", "true");
    expander.textContent = "▾";
    const body = h("div");
    const event = hit.event;
    const showTable = () => replace(body, eventTable(event, (name, value, exclude) => this.addFilter(name, value, exclude)));
    const showJson = () => replace(body, h("pre", { class: "json", tabindex: "0", "aria-label": "Event as JSON" }, JSON.stringify(event, null, 2)));
    const showContext = () => this.showContext(body, hit);
    const tabs = h("div", { class: "tabs", role: "group", "aria-label": "Event views" },
      h("button", { type: "button", class: "ghost small", onclick: showTable }, "Table"),
      h("button", { type: "button", class: "ghost small", onclick: showJson }, "JSON"),
      h("button", { type: "button", class: "ghost small context-button", onclick: showContext }, "Surrounding events"));
    showTable();
    row.after(h("tr", { class: "detail" }, h("td", { colspan: String(6 + this.state.columns.length) }, tabs, body)));
  }

  /** The events just before and after `hit`; by default only those matching the search
   * (its query and filters), as Kibana's surrounding documents keep the filters. */
  async showContext(body, hit, { matching = true } = {}) {
    replace(body, h("p", { class: "muted" }, "Loading surrounding events…"));
    const q = effectiveQuery(this.state);
    const filtered = matching && q !== "*";
    try {
      const answer = await api(withQuery(`/api/events/${encodeURIComponent(hit.id)}/context`, { before: 10, after: 10, q: filtered ? q : undefined }));
      const anchor = answer.event;
      const events = [...answer.before, anchor, ...answer.after];
      events.sort((a, b) => Date.parse(field(b, "timestamp")) - Date.parse(field(a, "timestamp")));
      const scope = q === "*"
        ? h("p", { class: "muted context-scope" }, "Every event just before and after this one.")
        : h("p", { class: "muted context-scope" },
            filtered ? "Events matching this search just before and after this one. " : "Every event just before and after this one, whatever the search. ",
            h("button", { type: "button", class: "ghost small context-toggle", onclick: () => this.showContext(body, hit, { matching: !filtered }) },
              filtered ? "Show every event" : "Only those matching the search"));
      replace(body, scope, h("table", { class: "results context", "aria-label": "Surrounding events", dataset: { matching: String(filtered) } },
        h("thead", null, h("tr", null, ["Time", "Kind", "Region", "Level", "Message"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, events.map((e) => {
          const level = String(field(e, "level") || "");
          return h("tr", { class: `${e.id === anchor.id ? "anchor " : ""}${level ? `lvl-${level}` : ""}`, dataset: { id: e.id } },
            h("td", { class: "time", "data-label": "Time" }, formatTime(field(e, "timestamp"), { millis: true })),
            h("td", { "data-label": "Kind" }, field(e, "kind")), h("td", { "data-label": "Region" }, field(e, "region")),
            h("td", { "data-label": "Level" }, h("span", { class: `level ${level}` }, level)), h("td", { class: "msg", "data-label": "Message" }, messageOf(e)));
        }))));
    } catch (err) {
      replace(body, unavailable("Surrounding events", err));
    }
  }

  /** Called when leaving the page. */
  stop() {
    clearInterval(this.timer);
    clearTimeout(this.fieldsTimer);
    this.aggregate.stop();
    window.removeEventListener("resize", this.onResize);
    if (this.controller) this.controller.abort();
  }

  /** Called on back/forward within the page. */
  update() {
    this.show(stateFromUrl(location.search));
  }
}

/**
 * The API's error, said once: its message, then, for a query error, the query it is about
 * with a caret under the position (`detail.position`), then a hint or the form expected
 * when the message does not already say it.
 */
export function describeError(err) {
  const detail = err.detail && typeof err.detail === "object" ? err.detail : null;
  const lines = [err.message];
  const position = detail && detail.position;
  if (position && Number.isInteger(position.column) && typeof detail.query === "string") {
    lines.push(detail.query, `${" ".repeat(Math.max(0, position.column - 1))}^`);
  }
  if (detail) {
    for (const key of ["hint", "expected"]) {
      const value = detail[key];
      const text = Array.isArray(value) ? value.join(", ") : value;
      if (typeof text === "string" && text && !err.message.includes(text)) lines.push(`${key}: ${text}`);
    }
  } else if (err.detail) {
    lines.push(String(err.detail));
  }
  return lines.join("\n");
}

/**
 * A facet's values, most hits first; with `known` (every configured region), the known
 * values without hits follow with a count of 0, by name.
 */
export function facetValues(values, known) {
  const listed = values.filter((v) => v.value !== "");
  if (!known) return listed;
  const seen = new Set(listed.map((v) => v.value));
  const silent = known.filter((name) => !seen.has(name)).sort((a, b) => a.localeCompare(b)).map((value) => ({ value, count: 0 }));
  return [...listed, ...silent];
}

function shareBar(fraction) {
  const bar = h("span");
  bar.style.width = `${Math.max(2, Math.round(fraction * 100))}%`;
  return bar;
}

const templates = new Map();
/** A row of the results with `extra` column cells before the message. */
function rowTemplate(extra) {
  if (!templates.has(extra)) {
    templates.set(extra, h("tr", { class: "hit" },
      h("td", null, h("button", { type: "button", class: "expander", "aria-expanded": "false", "aria-label": "Show the full event" }, "▸")),
      // The time cell also holds kind and region, shown only on a phone, where their own
      // columns give way to the message.
      h("td", { class: "time" }, h("span", { class: "when" }), h("span", { class: "phone-meta" })),
      h("td", { class: "col-kind" }), h("td", { class: "col-region" }),
      h("td", null, h("span", { class: "level" })),
      Array.from({ length: extra }, () => h("td", { class: "col-extra" })),
      h("td", { class: "msg" })));
  }
  return templates.get(extra);
}

/** Every leaf of `value` as [dotted.path, value]. */
export function flatten(value, prefix = "", out = []) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else if (Array.isArray(value) && value.length > 0 && value.length <= 5 && value.every((v) => typeof v !== "object")) {
    out.push([prefix, value.join(", ")]);
  } else if (Array.isArray(value) && value.length > 5) {
    out.push([prefix, `[${value.length} items: see JSON]`]);
  } else {
    out.push([prefix, value === null ? "null" : String(value)]);
  }
  return out;
}

function eventTable(event, onFilter) {
  return h("table", { "aria-label": "Event fields" }, h("tbody", null, flatten(event).map(([key, value]) =>
    h("tr", null, h("td", null, key), h("td", null, value,
      FACET_FIELDS.includes(key) || key === "source"
        ? [" ",
           h("button", { type: "button", class: "ghost small", "aria-label": `Filter for ${key}: ${value}`, onclick: () => onFilter(key, value, false) }, "+"),
           h("button", { type: "button", class: "ghost small", "aria-label": `Filter out ${key}: ${value}`, onclick: () => onFilter(key, value, true) }, "−")]
        : null)))));
}
