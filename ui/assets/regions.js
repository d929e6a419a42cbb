// Regions: every region's last temperature, when it was last seen (late ones stand out) and
// a 24-hour sparkline; a region's page with observed and forecast temperature, its alerts
// and its logs.

import { api, withQuery } from "./api.js";
import { h, replace, badge, unavailable, keyValues } from "./dom.js";
import { sparkline, temperatureChart } from "./charts.js";
import { ago, formatTime } from "./time.js";
import { quoteTerm, urlFromState } from "./search.js";
import { alertsOf, bySeverity } from "./alerts.js";

const REFRESH_MS = 30e3;

export function render(main, ctx) {
  const path = location.pathname;
  if (path.startsWith("/regions/") && path.length > "/regions/".length) return new RegionPage(main, regionFromPath(path));
  return new RegionList(main);
}

/** The region named by `/regions/<name>` (a malformed escape is taken as written). */
export function regionFromPath(path) {
  const raw = path.slice("/regions/".length);
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

// ---- Reading answers ----

/** One entry of `/api/regions`: `last_seen` and `last_observation` (the event) are null until it reports. */
function readRegion(raw) {
  const observation = raw.last_observation;
  return {
    name: raw.name,
    lat: raw.lat,
    lon: raw.lon,
    temperature: observation ? observation.temperature_c : null,
    lastSeen: raw.last_seen,
  };
}

function isLateAlert(alert) {
  return alert.state === "firing" && /late|silent|stale|absent/i.test(alert.rule);
}

/** Trouble, worst first: a region's rank is that of its worst firing alert, else late, else ok. */
export const TROUBLE = ["critical", "warning", "late", "info", "ok"];

/**
 * Every region with its trouble: `firing` (its firing alerts, worst severity first), `late`
 * (an alert says its data is late, or it is far behind the other regions) and `trouble`
 * (one of TROUBLE); sorted worst first, then by name.
 */
export function regionsByTrouble(regions, firing, now = Date.now()) {
  const list = regions.map(readRegion);
  const lateByAlert = new Set(firing.filter(isLateAlert).map((a) => a.region));
  const ages = list.filter((r) => r.lastSeen).map((r) => now - Date.parse(r.lastSeen)).sort((a, b) => a - b);
  const typical = ages.length ? ages[Math.floor(ages.length / 2)] : 0;
  const farBehind = (r) => !r.lastSeen || (now - Date.parse(r.lastSeen) > 3 * typical && now - Date.parse(r.lastSeen) - typical > 30e3);
  for (const region of list) {
    region.firing = bySeverity(firing.filter((a) => a.state === "firing" && a.region === region.name));
    region.late = lateByAlert.has(region.name) || farBehind(region);
    const worst = region.firing.length ? String(region.firing[0].severity) : null;
    region.trouble = worst === "critical" || worst === "warning" ? worst : region.late ? "late" : worst === "info" ? "info" : "ok";
  }
  return list.sort((a, b) => TROUBLE.indexOf(a.trouble) - TROUBLE.indexOf(b.trouble) || a.name.localeCompare(b.name));
}

/** One badge per severity among `alerts` (worst first), with how many: `critical 2`. */
export function severityBadges(alerts) {
  const counts = new Map();
  for (const alert of bySeverity(alerts)) counts.set(String(alert.severity), (counts.get(String(alert.severity)) || 0) + 1);
  return [...counts].map(([severity, count]) =>
    h("span", { class: `badge ${severity}`, title: alerts.filter((a) => String(a.severity) === severity).map((a) => a.rule).join(", ") }, `${count} ${severity}`));
}

/** Observations of one region as chart points, oldest first. */
async function observedSeries(name, from, limit) {
  const answer = await api(withQuery("/api/search", { q: `kind:observation AND region:${quoteTerm(name)}`, from, to: "now", limit }));
  return answer.hits
    .map((hit) => ({ t: Date.parse(hit.timestamp), v: Number(hit.event.temperature_c) }))
    .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v))
    .sort((a, b) => a.t - b.t);
}

const searchLink = (q, from) => urlFromState({ q, from, to: "now", filters: [], excludes: [], live: false, sort: "", limit: 100 });

// ---- The list ----

class RegionList {
  constructor(main) {
    this.grid = h("div", { class: "region-grid", "aria-live": "polite" });
    this.note = h("p", { class: "muted" });
    replace(main, h("h1", null, "Regions"), this.note, this.grid);
    this.load();
    this.timer = setInterval(() => { if (!document.hidden) this.load(); }, REFRESH_MS);
  }

  async load() {
    const [regions, alerts] = await Promise.allSettled([api("/api/regions"), api(withQuery("/api/alerts", { state: "firing" }))]);
    if (regions.status === "rejected") {
      replace(this.grid, unavailable("Regions", regions.reason));
      return;
    }
    const firing = alerts.status === "fulfilled" ? alertsOf(alerts.value) : [];
    const list = regionsByTrouble(regions.value.regions, firing);
    this.note.textContent = `${list.length} regions, the ones in trouble first${alerts.status === "rejected" ? " · alerts unavailable" : ""} · refreshed ${formatTime(new Date())}`;
    const sparks = [];
    replace(this.grid, list.map((region) => {
      const spark = h("div", { class: "spark" });
      const range = h("span", { class: "spark-range muted" });
      sparks.push([region.name, spark, range]);
      return h("a", { class: `panel region-card trouble-${region.trouble}${region.late ? " late" : ""}`, href: `/regions/${encodeURIComponent(region.name)}`, "data-nav": true, dataset: { region: region.name, trouble: region.trouble } },
        h("span", { class: "name" }, region.name),
        h("span", { class: "flags" }, severityBadges(region.firing), region.late ? badge("late") : null),
        h("span", { class: "temp" }, Number.isFinite(Number(region.temperature)) && region.temperature !== null ? `${Number(region.temperature).toFixed(1)} °C` : "–"),
        h("span", { class: region.late ? "bad" : "muted" }, region.lastSeen ? `seen ${ago(region.lastSeen)}` : "never seen"),
        spark, range);
    }));
    // Sparklines after the cards, a few at a time, so the list shows at once.
    for (let i = 0; i < sparks.length; i += 4) {
      await Promise.all(sparks.slice(i, i + 4).map(async ([name, container, range]) => {
        try {
          const points = await observedSeries(name, "now-24h", 500);
          const span = points.length > 1 ? ago(new Date(points[0].t)).replace(" ago", "") : "";
          const label = `Temperature in ${name}, last ${span || "24 h"}`;
          replace(container, sparkline(points, { label }));
          // The sparkline is scaled to its own data: its range says what the height means.
          const values = points.map((p) => p.v);
          range.textContent = values.length > 1 ? `${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)} °C over ${span || "24 h"}` : "";
        } catch {
          replace(container, h("span", { class: "unavailable" }, "no history"));
        }
      }));
    }
  }

  stop() {
    clearInterval(this.timer);
  }
}

// ---- One region ----

class RegionPage {
  constructor(main, name) {
    this.name = name;
    this.summary = h("div", { class: "region-summary" });
    this.chart = h("div", { class: "chart-box" });
    this.model = h("div", { class: "muted" });
    this.alerts = h("div");
    this.logs = h("div");
    replace(main,
      h("p", null, h("a", { href: "/regions", "data-nav": true }, "← All regions")),
      h("h1", null, name),
      this.summary,
      h("section", { class: "panel", "aria-label": "Temperature chart" },
        h("div", { class: "legend" },
          h("span", null, h("span", { class: "swatch observed" }), "Observed"),
          h("span", null, h("span", { class: "swatch forecast" }), "Forecast"),
          h("span", null, h("span", { class: "swatch band-swatch" }), "Prediction interval")),
        this.chart, this.model),
      h("div", { class: "two-col" },
        h("section", { "aria-label": "Recent alerts" }, h("h2", null, "Recent alerts"), this.alerts),
        h("section", { "aria-label": "Recent logs" }, h("h2", null, "Recent logs ", h("a", { href: searchLink(`region:${quoteTerm(name)}`, "now-24h"), "data-nav": true, class: "muted" }, "open in search")), this.logs)));
    this.load();
    this.timer = setInterval(() => { if (!document.hidden) this.load(); }, REFRESH_MS);
  }

  async load() {
    const name = this.name;
    const [regions, observed, forecast, alerts, logs] = await Promise.allSettled([
      api("/api/regions"),
      observedSeries(name, "now-48h", 1000),
      api(withQuery(`/api/forecast/${encodeURIComponent(name)}`, { horizon: 24, level: 0.95 })),
      api(withQuery("/api/alerts", { state: "all", region: name })),
      api(withQuery("/api/search", { q: `kind:log AND region:${quoteTerm(name)}`, from: "now-24h", to: "now", limit: 50 })),
    ]);

    if (regions.status === "fulfilled") {
      const region = regions.value.regions.map(readRegion).find((r) => r.name === name);
      replace(this.summary, region
        ? h("div", { class: "panel" }, keyValues([
            ["Last temperature", region.temperature !== null ? `${Number(region.temperature).toFixed(1)} °C` : "–"],
            ["Last seen", region.lastSeen ? `${formatTime(region.lastSeen)} (${ago(region.lastSeen)})` : "never"],
            ["Position", `${region.lat}, ${region.lon}`],
          ]))
        : h("p", { class: "notice" }, "This region is not configured."));
    } else {
      replace(this.summary, unavailable("Region summary", regions.reason));
    }

    const points = forecast.status === "fulfilled" ? readForecast(forecast.value) : [];
    temperatureChart(this.chart, { observed: observed.status === "fulfilled" ? observed.value : [], forecast: points });
    const notes = [];
    if (observed.status === "rejected") notes.push(unavailable("Observations", observed.reason));
    if (forecast.status === "rejected") notes.push(unavailable("Forecast", forecast.reason));
    else notes.push(forecastSummary(forecast.value));
    replace(this.model, notes);

    replace(this.alerts, alerts.status === "fulfilled" ? alertList(alertsOf(alerts.value)) : unavailable("Alerts", alerts.reason));
    replace(this.logs, logs.status === "fulfilled" ? logList(logs.value.hits) : unavailable("Logs", logs.reason));
  }

  stop() {
    clearInterval(this.timer);
  }
}

// A bound the model could not give is null: no band there, rather than a band to 0 °C.
const bound = (value) => (value === null ? NaN : Number(value));

/** The points of `/api/forecast/{region}`, oldest first. */
export function readForecast(answer) {
  return answer.points
    .map((p) => ({ t: Date.parse(p.timestamp), v: Number(p.temperature_c), lo: bound(p.lower), hi: bound(p.upper) }))
    .filter((p) => Number.isFinite(p.t))
    .sort((a, b) => a.t - b.t);
}

function forecastSummary(forecast) {
  const parts = [];
  if (forecast.model) parts.push(`model ${forecast.model}`);
  if (forecast.generated_at) parts.push(`generated ${ago(forecast.generated_at)}`);
  if (forecast.level) parts.push(`${Math.round(Number(forecast.level) * 100)}% interval`);
  if (forecast.history_hours) parts.push(`fitted on ${forecast.history_hours} h of history`);
  const mae = forecast.backtest_mae;
  if (mae) {
    const scores = Object.entries(mae).filter(([, v]) => Number.isFinite(Number(v))).map(([model, v]) => `${model} ${Number(v).toFixed(2)} °C`);
    if (scores.length) parts.push(`backtest MAE: ${scores.join(", ")}`);
  }
  return h("p", null, parts.join(" · ") || "No forecast details.");
}

function alertList(alerts) {
  if (!alerts.length) return h("p", { class: "muted" }, "No alerts for this region.");
  return h("table", { "aria-label": "Alerts of this region" },
    h("thead", null, h("tr", null, ["State", "Rule", "Since", "Message"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, alerts.slice(0, 20).map((a) => h("tr", null,
      h("td", null, badge(a.state), " ", badge(a.severity)),
      h("td", null, h("a", { href: `/alerts/${encodeURIComponent(a.id)}`, "data-nav": true }, a.rule)),
      h("td", { class: "time" }, formatTime(a.started_at)),
      h("td", null, a.summary)))));
}

function logList(hits) {
  if (!hits.length) return h("p", { class: "muted" }, "No logs for this region in the last 24 hours.");
  return h("table", { class: "results", "aria-label": "Logs of this region" },
    h("thead", null, h("tr", null, ["Time", "Level", "Message"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, hits.map((hit) => {
      const level = hit.level;
      return h("tr", { class: level ? `lvl-${level}` : "" },
        h("td", { class: "time" }, formatTime(hit.timestamp)),
        h("td", null, h("span", { class: `level ${level}` }, level)),
        h("td", { class: "msg" }, hit.message));
    })));
}
