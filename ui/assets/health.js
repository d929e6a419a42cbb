// Health: per service, events received, sent, errors, dropped and bus lag (from the
// counters every service exports), and the collector's last round.

import { api } from "./api.js";
import { h, replace, unavailable, keyValues, badge } from "./dom.js";
import { ago, formatTime } from "./time.js";

const REFRESH_MS = 5e3;
const SERVICE_ORDER = ["collector", "indexer", "forecaster", "alerter", "ui", "windsock"];

export function render(main) {
  return new HealthPage(main);
}

const number = (v) => (v === undefined || v === null ? "–" : Number(v).toLocaleString(undefined, { maximumFractionDigits: 1 }));

class HealthPage {
  constructor(main) {
    this.counters = h("div");
    this.collector = h("div");
    this.scrapes = h("div");
    this.updated = h("p", { class: "muted", role: "status" });
    replace(main,
      h("h1", null, "Health"),
      this.updated,
      h("section", { "aria-labelledby": "svc-h" }, h("h2", { id: "svc-h" }, "Services"), this.counters),
      h("section", { "aria-labelledby": "col-h" }, h("h2", { id: "col-h" }, "Last collection round"), this.collector),
      h("section", { "aria-labelledby": "src-h" }, h("h2", { id: "src-h" }, "Sources of these numbers"), this.scrapes));
    this.load();
    this.timer = setInterval(() => { if (!document.hidden) this.load(); }, REFRESH_MS);
  }

  async load() {
    const [health, status] = await Promise.allSettled([api("/_ui/health"), api("/api/collector/status")]);
    this.updated.textContent = `Refreshed ${formatTime(new Date())}, every ${REFRESH_MS / 1000} s.`;
    if (health.status === "fulfilled") {
      const services = health.value.services || {};
      const names = Object.keys(services).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
      replace(this.counters, names.length
        ? h("div", { class: "table-wrap" }, h("table", { "aria-label": "Service counters" },
            h("thead", null, h("tr", null, h("th", { scope: "col" }, "Service"), ["Received", "Sent", "Errors", "Dropped", "Bus lag"].map((c) => h("th", { scope: "col", class: "num" }, c)))),
            h("tbody", null, names.map((name) => {
              const c = services[name];
              return h("tr", { dataset: { service: name } },
                h("th", { scope: "row" }, name),
                h("td", { class: "num" }, number(c.received)),
                h("td", { class: "num" }, number(c.sent)),
                h("td", { class: `num${c.errors ? " bad" : ""}`, title: breakdown(c.errors_by_kind) }, number(c.errors)),
                h("td", { class: `num${c.dropped ? " bad" : ""}`, title: breakdown(c.dropped_by_reason) }, number(c.dropped)),
                h("td", { class: "num" }, c.bus_lag === null || c.bus_lag === undefined ? "–" : number(c.bus_lag)));
            }))))
        : h("p", { class: "muted" }, "No counters yet."));
      replace(this.scrapes, h("ul", null, (health.value.scrapes || []).map((s) =>
        h("li", null, badge(s.ok ? "ok" : "unavailable", s.ok ? "ok" : "failed"), " ", String(s.source), s.url ? ` (${s.url})` : "", s.error ? `: ${s.error}` : ""))));
    } else {
      replace(this.counters, unavailable("Counters", health.reason));
    }
    replace(this.collector, status.status === "fulfilled" ? collectorStatus(status.value) : unavailable("Collector status", status.reason));
  }

  stop() {
    clearInterval(this.timer);
  }
}

const rank = (name) => (SERVICE_ORDER.indexOf(name) + 1 || 99);

function breakdown(map) {
  return Object.entries(map || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
}

const TIME_KEY = /(_at|time|last_seen|started|finished)$/;

/** The collector's status, whatever its exact shape: times as times, nested objects flat. */
function collectorStatus(status) {
  const round = status.last_round ?? status.round ?? status;
  const pairs = [];
  const add = (prefix, value) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) add(prefix ? `${prefix}.${k}` : k, v);
    } else if (Array.isArray(value)) {
      pairs.push([prefix, value.length <= 8 ? value.map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v))).join(", ") : `${value.length} items`]);
    } else if (typeof value === "string" && TIME_KEY.test(prefix) && !Number.isNaN(Date.parse(value))) {
      pairs.push([prefix, `${formatTime(value)} (${ago(value)})`]);
    } else {
      pairs.push([prefix, value === null ? "–" : String(value)]);
    }
  };
  add("", round);
  if (round !== status) {
    for (const [k, v] of Object.entries(status)) if (k !== "last_round" && k !== "round") add(k, v);
  }
  return h("div", { class: "panel" }, keyValues(pairs));
}
