// Health: per service, events received, sent, errors, dropped and bus lag (from the
// counters every service exports), and the collector's last round.

import { api } from "./api.js";
import { h, replace, unavailable, keyValues, badge, stacked } from "./dom.js";
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
        ? h("div", { class: "table-wrap" }, stacked(h("table", { "aria-label": "Service counters" },
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
            })))))
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

// `22:01:50 (in 40 s)` for the next round, `(3 s ago)` for the last: `ago` says which.
const when = (value) => (value ? `${formatTime(value)} (${ago(value)})` : "–");

/** The collector's status: the schedule, the last round with each region's outcome, the backfill. */
function collectorStatus(status) {
  const round = status.last_round;
  const outcomes = round && round.outcomes ? Object.entries(round.outcomes).map(([k, v]) => `${v} ${k.replace(/_/g, " ")}`).join(", ") : "–";
  const summary = keyValues([
    ["Source", String(status.source ?? "–")],
    ["Schedule", String(status.schedule ?? "–")],
    ["Rounds completed", status.rounds_completed === undefined ? "–" : number(status.rounds_completed)],
    ["Last round", round ? when(round.started) : "none yet"],
    ["Took", round && round.started && round.finished ? `${Date.parse(round.finished) - Date.parse(round.started)} ms` : "–"],
    ["Outcomes", outcomes],
    ["Next round", when(status.next_round)],
    ["Backfill progress", backfillProgressText(status.backfill_progress)],
    ["Backfill", backfillText(status.backfill)],
  ]);
  const regions = round && Array.isArray(round.regions) ? round.regions : [];
  return h("div", null,
    h("div", { class: "panel" }, summary),
    regions.length
      ? h("div", { class: "table-wrap" }, stacked(h("table", { "aria-label": "Regions of the last round" },
          h("thead", null, h("tr", null, h("th", { scope: "col" }, "Region"), h("th", { scope: "col" }, "Outcome"),
            ["Observations", "Published", "Attempts", "Latency"].map((c) => h("th", { scope: "col", class: "num" }, c)), h("th", { scope: "col" }, "Error"))),
          h("tbody", null, regions.map((r) => h("tr", null,
            h("th", { scope: "row" }, String(r.region ?? "")),
            h("td", null, badge(String(r.outcome ?? "?"), r.outcome === "ok" ? "ok" : r.outcome === "failed" ? "failed" : "pending")),
            h("td", { class: "num" }, number(r.observations)),
            h("td", { class: "num" }, number(r.published)),
            h("td", { class: "num" }, number(r.attempts)),
            h("td", { class: "num" }, r.latency_ms === undefined ? "–" : `${r.latency_ms} ms`),
            h("td", { class: "msg" }, [r.http_status ? `HTTP ${r.http_status}` : null, r.error].filter(Boolean).join(": "))))))))
      : null);
}

/** Where the backfill on start is, while it runs beside the live rounds and after. */
function backfillProgressText(progress) {
  if (!progress || !progress.state) return "–";
  if (progress.state === "pending" || progress.state === "skipped") return progress.state;
  const rate = progress.rate_per_second ? `, at most ${number(progress.rate_per_second)} requests/s` : "";
  return `${progress.state}: ${number(progress.regions_done)} of ${number(progress.regions_total)} regions, ${number(progress.published)} of ${number(progress.observations)} observations published${rate}`;
}

function backfillText(backfill) {
  if (!backfill) return "–";
  if (backfill.skipped) return `skipped: ${backfill.skipped}`;
  return `${number(backfill.published)} of ${number(backfill.observations)} observations published over ${number(backfill.instants)} instants${backfill.failures ? `, ${backfill.failures} failures` : ""}`;
}
