// The overview, the landing page: what is wrong now. Firing and pending alerts (critical
// first), each a link to its page; the regions in trouble first; a map of the regions coloured
// by their trouble; the pipeline's health in one line per service, with a link to Health.

import { api, withQuery } from "./api.js";
import { h, replace, badge, unavailable } from "./dom.js";
import { ago, formatTime } from "./time.js";
import { alertsOf, alertPath, bySeverity } from "./alerts.js";
import { regionsByTrouble, severityBadges } from "./regions.js";
import { regionMap } from "./map.js";

const REFRESH_MS = 10e3;
const HEALTH_MS = 5e3;
// The pipeline's services in the order events flow through them.
const SERVICE_ORDER = ["collector", "indexer", "forecaster", "alerter", "ui", "windsock"];

export function render(main) {
  return new Overview(main);
}

const rate = (perSecond) => `${perSecond.toLocaleString("en", { maximumFractionDigits: perSecond < 10 ? 1 : 0 })}/s`;

class Overview {
  constructor(main) {
    this.alerts = h("div", { class: "overview-alerts" });
    this.regions = h("div");
    this.map = h("div");
    this.pipeline = h("div");
    this.updated = h("p", { class: "muted", role: "status" });
    this.previous = null;
    replace(main,
      h("h1", null, "Overview"),
      this.updated,
      h("div", { class: "overview-grid" },
        h("section", { class: "overview-alerts-section", "aria-labelledby": "ov-alerts-h" },
          h("h2", { id: "ov-alerts-h" }, "Alerts ", h("a", { href: "/alerts", "data-nav": true, class: "muted small-link" }, "all alerts")), this.alerts),
        h("section", { class: "overview-map-section", "aria-labelledby": "ov-map-h" }, h("h2", { id: "ov-map-h" }, "Map"), this.map),
        h("section", { class: "overview-regions-section", "aria-labelledby": "ov-regions-h" },
          h("h2", { id: "ov-regions-h" }, "Regions ", h("a", { href: "/regions", "data-nav": true, class: "muted small-link" }, "all regions")), this.regions),
        h("section", { class: "overview-pipeline-section", "aria-labelledby": "ov-pipeline-h" },
          h("h2", { id: "ov-pipeline-h" }, "Pipeline ", h("a", { href: "/health", "data-nav": true, class: "muted small-link" }, "health")), this.pipeline)));
    this.load();
    this.loadHealth();
    // A second reading soon after the first, so rates show without waiting a full period.
    this.firstRate = setTimeout(() => this.loadHealth(), 1500);
    this.timer = setInterval(() => { if (!document.hidden) this.load(); }, REFRESH_MS);
    this.healthTimer = setInterval(() => { if (!document.hidden) this.loadHealth(); }, HEALTH_MS);
  }

  async load() {
    const [firing, pending, regions] = await Promise.allSettled([
      api(withQuery("/api/alerts", { state: "firing", limit: 1000 })),
      api(withQuery("/api/alerts", { state: "pending", limit: 1000 })),
      api("/api/regions"),
    ]);
    this.updated.textContent = `Refreshed ${formatTime(new Date())}, every ${REFRESH_MS / 1000} s.`;
    const firingAlerts = firing.status === "fulfilled" ? alertsOf(firing.value) : [];
    if (firing.status === "rejected" && pending.status === "rejected") {
      replace(this.alerts, unavailable("Alerts", firing.reason));
    } else {
      const open = bySeverity([...firingAlerts, ...(pending.status === "fulfilled" ? alertsOf(pending.value) : [])]);
      replace(this.alerts,
        firing.status === "rejected" ? unavailable("Firing alerts", firing.reason) : null,
        pending.status === "rejected" ? unavailable("Pending alerts", pending.reason) : null,
        open.length ? alertList(open) : h("p", { class: "all-clear" }, "No alert is firing or pending."));
    }
    if (regions.status === "rejected") {
      replace(this.regions, unavailable("Regions", regions.reason));
      replace(this.map, unavailable("Map", regions.reason));
      return;
    }
    const list = regionsByTrouble(regions.value.regions, firingAlerts);
    replace(this.map, regionMap(list));
    replace(this.regions, regionList(list));
  }

  async loadHealth() {
    let report;
    try {
      report = await api("/_ui/health");
    } catch (err) {
      replace(this.pipeline, unavailable("Pipeline health", err));
      return;
    }
    const now = Date.now();
    const services = report.services;
    const previous = this.previous;
    this.previous = { at: now, services };
    const names = Object.keys(services).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    if (!names.length) {
      replace(this.pipeline, h("p", { class: "muted" }, "No counters yet."));
      return;
    }
    replace(this.pipeline, h("ul", { class: "pipeline" }, names.map((name) => {
      const c = services[name];
      const before = previous && previous.services[name];
      const seconds = previous ? (now - previous.at) / 1000 : 0;
      const flow = (field) => (before && seconds > 0 ? rate(Math.max(0, Number(c[field]) - Number(before[field])) / seconds) : "…");
      const errors = Number(c.errors) || 0;
      const lag = c.bus_lag === null ? "–" : Number(c.bus_lag).toLocaleString("en");
      return h("li", { dataset: { service: name } },
        h("span", { class: "service" }, name),
        h("span", null, `in ${flow("received")}`),
        h("span", null, `out ${flow("sent")}`),
        h("span", { class: errors ? "bad" : "" }, `${errors.toLocaleString("en")} error${errors === 1 ? "" : "s"}`),
        h("span", { class: Number(c.bus_lag) > 1000 ? "bad" : "" }, `lag ${lag}`));
    })));
  }

  stop() {
    clearInterval(this.timer);
    clearInterval(this.healthTimer);
    clearTimeout(this.firstRate);
  }
}

const rank = (name) => (SERVICE_ORDER.indexOf(name) + 1 || 99);

/** Open alerts, worst first, each a link to its page. */
function alertList(alerts) {
  return h("ul", { class: "overview-alert-list" }, alerts.map((alert) =>
    h("li", { class: `severity-${alert.severity}`, dataset: { id: alert.id, state: alert.state, severity: alert.severity } },
      h("a", { class: "alert-link", href: alertPath(alert), "data-nav": true },
        h("span", { class: "flags" }, badge(alert.severity), " ", badge(alert.state),
          alert.acknowledged_by ? [" ", h("span", { class: "badge info" }, "acked")] : null,
          alert.silenced_by ? [" ", badge("silenced", "info")] : null),
        h("span", { class: "what" }, h("strong", null, alert.rule), alert.region ? ` · ${alert.region}` : ""),
        h("span", { class: "summary" }, alert.summary),
        h("span", { class: "muted since" }, `since ${ago(alert.started_at).replace(" ago", "")}`)))));
}

/** Regions in trouble (worst first), then how many are fine. */
function regionList(regions) {
  const trouble = regions.filter((r) => r.trouble !== "ok");
  const fine = regions.length - trouble.length;
  return h("div", null,
    trouble.length
      ? h("ul", { class: "overview-region-list" }, trouble.map((region) =>
          h("li", { class: `trouble-${region.trouble}`, dataset: { region: region.name, trouble: region.trouble } },
            h("a", { href: `/regions/${encodeURIComponent(region.name)}`, "data-nav": true }, region.name),
            h("span", { class: "flags" }, severityBadges(region.firing), region.late ? [" ", badge("late")] : null),
            h("span", { class: "muted" }, region.lastSeen ? `seen ${ago(region.lastSeen)}` : "never seen"))))
      : null,
    h("p", { class: trouble.length ? "muted" : "all-clear" },
      trouble.length ? `${fine} other region${fine === 1 ? "" : "s"} report on time with no firing alert.` : `All ${regions.length} regions report on time with no firing alert.`));
}
