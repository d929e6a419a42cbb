// One alert's page (`/alerts/{id}`): its state and summary, its value against the rule's
// threshold or forecast band, its timeline, the related events, its Slack messages, and what
// to do about it: Acknowledge (who, remembered in this browser; shows who and when after) and
// Silence (a form filled with its rule and region; `?silence=1` opens it, focused, as the
// Slack button does). Changes send the API token given for this tab.

import { api, withQuery } from "./api.js";
import { h, s, replace, badge, unavailable, keyValues, announce } from "./dom.js";
import { ago, formatTime, tickLabel } from "./time.js";
import { niceTicks, timeTicks } from "./charts.js";
import { quoteTerm } from "./search.js";
import { author, cell, silenceForm, tokenForm, tokenHint, valueText } from "./alerts.js";

const REFRESH_MS = 10e3;

export function render(main) {
  return new AlertPage(main, idFromPath(location.pathname));
}

/** The alert id of `/alerts/<id>` (a malformed escape is taken as written). */
export function idFromPath(path) {
  const raw = path.slice("/alerts/".length).replace(/\/$/, "");
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

const withUnit = (value, unit) => (value === undefined || value === null ? "–" : `${valueText(value)}${unit ? (unit === "%" ? "" : " ") + unit : ""}`);

class AlertPage {
  constructor(main, id) {
    this.id = id;
    this.path = `/api/alerts/${encodeURIComponent(id)}`;
    this.heading = h("h1", null, "Alert");
    this.flags = h("p", { class: "alert-flags" });
    this.error = h("p", { class: "notice error", role: "alert", hidden: true });
    this.summary = h("div", { class: "panel alert-summary" }, h("p", { class: "muted" }, "Loading…"));
    this.ack = h("div", { class: "ack" });
    this.silenceBox = h("div", { class: "alert-silence", hidden: true });
    this.silenceToggle = h("button", { type: "button", class: "ghost", "aria-expanded": "false", "aria-controls": "alert-silence", onclick: () => this.openSilence(this.silenceBox.hidden) }, "Silence…");
    this.silenceBox.id = "alert-silence";
    this.chart = h("div", { class: "alert-chart" });
    this.timeline = h("div");
    this.related = h("div");
    this.deliveries = h("div");
    replace(main,
      h("p", null, h("a", { href: "/alerts", "data-nav": true }, "← All alerts")),
      this.heading, this.flags, this.error,
      h("div", { class: "alert-layout" },
        h("div", { class: "alert-main" },
          this.summary,
          h("section", { class: "panel", "aria-labelledby": "alert-chart-h" }, h("h2", { id: "alert-chart-h" }, "Value"), this.chart),
          h("section", { "aria-labelledby": "alert-timeline-h" }, h("h2", { id: "alert-timeline-h" }, "Timeline"), this.timeline),
          h("section", { "aria-labelledby": "alert-related-h" }, h("h2", { id: "alert-related-h" }, "Related events"), this.related),
          h("section", { "aria-labelledby": "alert-deliveries-h" }, h("h2", { id: "alert-deliveries-h" }, "Slack messages"), this.deliveries)),
        h("aside", { class: "alert-actions", "aria-label": "Actions" },
          h("section", { class: "panel", "aria-labelledby": "alert-ack-h" }, h("h2", { id: "alert-ack-h" }, "Acknowledge"), this.ack),
          h("section", { class: "panel", "aria-labelledby": "alert-silence-h" }, h("h2", { id: "alert-silence-h" }, "Silence"), this.silenceToggle, this.silenceBox),
          tokenForm())));
    this.wantSilence = new URLSearchParams(location.search).get("silence") === "1";
    this.load();
    this.timer = setInterval(() => { if (!document.hidden) this.load(); }, REFRESH_MS);
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  async load() {
    let detail;
    try {
      detail = await api(this.path);
    } catch (err) {
      if (!this.detail) {
        replace(this.summary, unavailable("This alert", err));
        this.heading.textContent = err.status === 404 ? "No such alert" : "Alert";
      }
      this.showError(err.status === 404 ? `There is no alert ${this.id}.` : `The alert could not be loaded: ${err.message}`);
      this.loadFailed = true;
      return;
    }
    if (this.loadFailed) this.showError("");
    this.loadFailed = false;
    this.detail = detail;
    const alert = detail.alert;
    this.heading.textContent = alert.region ? `${alert.rule} · ${alert.region}` : alert.rule;
    document.title = `${this.heading.textContent} · ${document.title.split(" · ").slice(-1)[0]}`;
    replace(this.flags, badge(alert.state), " ", badge(alert.severity),
      alert.silenced_by ? [" ", badge("silenced", "info")] : null,
      alert.inhibited_by ? [" ", badge("inhibited", "info")] : null,
      alert.acknowledged_by ? [" ", h("span", { class: "badge info" }, "acknowledged")] : null);
    replace(this.summary, summaryOf(detail));
    this.drawAck(detail);
    this.drawSilence(detail);
    replace(this.timeline, timelineOf(detail));
    replace(this.related, relatedOf(detail));
    replace(this.deliveries, deliveriesOf(detail));
    this.drawChart(detail);
  }

  /** Acknowledge: a name (remembered) and a comment; once done, who and when, and a way back. */
  drawAck(detail) {
    const alert = detail.alert;
    const key = `${alert.state}|${alert.acknowledged_by}|${alert.acknowledged_at}`;
    if (key === this.ackKey) return; // keep what is being typed
    this.ackKey = key;
    if (alert.acknowledged_by) {
      replace(this.ack,
        h("p", { class: "acked", dataset: { by: alert.acknowledged_by } }, "Acknowledged by ", h("strong", null, alert.acknowledged_by),
          alert.acknowledged_at ? ` at ${formatTime(alert.acknowledged_at)} (${ago(alert.acknowledged_at)})` : ""),
        h("p", { class: "muted" }, "No reminders are sent until it resolves or fires again."),
        alert.state === "resolved" ? null : h("button", { type: "button", class: "ghost", onclick: () => this.withdraw() }, "Withdraw acknowledgement"));
      return;
    }
    if (alert.state === "resolved") {
      replace(this.ack, h("p", { class: "muted" }, "Resolved: there is nothing to acknowledge."));
      return;
    }
    const by = h("input", { id: "ack-by", name: "by", required: true, maxlength: 100, autocomplete: "name", value: author.get() });
    const comment = h("input", { id: "ack-comment", name: "comment", maxlength: 1000, placeholder: "what you are doing (optional)" });
    replace(this.ack, h("form", { class: "ack-form", "aria-label": "Acknowledge this alert", onsubmit: (e) => { e.preventDefault(); this.acknowledge(by.value.trim(), comment.value.trim()); } },
      h("div", { class: "field" }, h("label", { for: "ack-by" }, "Your name"), by),
      h("div", { class: "field" }, h("label", { for: "ack-comment" }, "Comment"), comment),
      h("button", { type: "submit" }, "Acknowledge")),
      h("p", { class: "muted" }, "Stops the reminders until it resolves or fires again."));
  }

  async acknowledge(by, comment) {
    if (!by) return this.showError("Say who acknowledges: your name.");
    try {
      await api(`${this.path}/acknowledge`, { method: "POST", body: { by, comment } });
      author.set(by);
      this.showError("");
      announce(`Acknowledged by ${by}`);
      this.load();
    } catch (err) {
      this.showError(`Not acknowledged: ${tokenHint(err)}`);
    }
  }

  async withdraw() {
    try {
      await api(withQuery(`${this.path}/acknowledge`, { by: author.get() }), { method: "DELETE" });
      this.showError("");
      announce("Acknowledgement withdrawn");
      this.load();
    } catch (err) {
      this.showError(`The acknowledgement was not withdrawn: ${tokenHint(err)}`);
    }
  }

  /** The silence form, filled from the alert's template once (not redrawn under the typing). */
  drawSilence(detail) {
    if (this.silence) return;
    const template = detail.silence_template;
    this.silenceNote = h("p", { class: "muted", role: "status" });
    this.silence = silenceForm({ rule: template.rule, region: template.region ?? "", duration: template.duration, comment: `Silenced from alert ${detail.alert.id}` }, (created) => {
      this.silenceNote.textContent = `Silence created${created && created.ends_at ? `, until ${formatTime(created.ends_at)}` : ""}.`;
      this.load();
    });
    replace(this.silenceBox, this.silence.element, this.silenceNote);
    if (this.wantSilence) this.openSilence(true);
  }

  openSilence(open) {
    this.silenceBox.hidden = !open;
    this.silenceToggle.setAttribute("aria-expanded", String(open));
    if (!open || !this.silence) return;
    const form = this.silence.form;
    const first = ["silence-author", "silence-comment"].map((id) => form.querySelector(`#${id}`)).find((input) => !input.value) || form.querySelector("#silence-duration");
    first.focus();
  }

  async drawChart(detail) {
    const alert = detail.alert;
    const metric = detail.threshold ? detail.threshold.metric : detail.kind === "forecast_deviation" ? "temperature_c" : null;
    const until = alert.resolved_at ? Date.parse(alert.resolved_at) : Date.now();
    const from = Date.parse(alert.started_at) - 30 * 60e3;
    let points = [];
    let source = "the values at its state changes";
    if (metric && alert.region) {
      try {
        const answer = await api(withQuery("/api/search", {
          q: `kind:observation AND region:${quoteTerm(alert.region)}`,
          from: new Date(from).toISOString(), to: new Date(Math.max(until, from + 60e3)).toISOString(), limit: 1000,
        }));
        points = answer.hits.map((hit) => ({ t: Date.parse(hit.timestamp), v: Number(hit.event[metric]) }))
          .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v)).sort((a, b) => a.t - b.t);
        source = `${metric} observed in ${alert.region}`;
      } catch (err) {
        replace(this.chart, unavailable("Observations", err));
        return;
      }
    } else {
      points = detail.timeline.filter((e) => e.value !== undefined && e.value !== null).map((e) => ({ t: Date.parse(e.at), v: Number(e.value) }));
    }
    if (points.length < 2) {
      replace(this.chart, h("p", { class: "muted" }, points.length ? `One value so far: ${withUnit(points[0].v, detail.unit)}.` : "No values to draw for this alert."));
      return;
    }
    const limits = [];
    if (detail.threshold) {
      if (detail.threshold.above !== undefined) limits.push({ v: detail.threshold.above, label: `limit ${withUnit(detail.threshold.above, detail.unit)}` });
      if (detail.threshold.below !== undefined) limits.push({ v: detail.threshold.below, label: `limit ${withUnit(detail.threshold.below, detail.unit)}` });
    }
    // Drawn at the box's own width, so its text keeps the page's size.
    const width = Math.max(280, Math.round(this.chart.getBoundingClientRect().width || 640));
    replace(this.chart, valueChart(points, { width, limits, band: detail.band, unit: detail.unit, started: Date.parse(alert.started_at) }),
      h("p", { class: "muted" }, `${source}${detail.band ? "; the shaded band is the forecast's range at the last observation" : ""}${limits.length ? "; the dashed line is the rule's limit" : ""}.`));
  }

  stop() {
    clearInterval(this.timer);
  }
}

function summaryOf(detail) {
  const alert = detail.alert;
  const when = (value) => (value ? `${formatTime(value)} (${ago(value)})` : "–");
  return h("div", null,
    h("p", { class: "alert-summary-text" }, alert.summary),
    detail.description ? h("p", { class: "muted" }, detail.description) : null,
    // What has not happened (not resolved, not silenced) is left out rather than shown as "–".
    keyValues([
      ["Value", withUnit(alert.value, detail.unit)],
      ["Expected", alert.expected],
      ["Started", when(alert.started_at)],
      ["Fired", alert.fired_at ? when(alert.fired_at) : null],
      ["Resolved", alert.resolved_at ? when(alert.resolved_at) : null],
      ["Silenced by", alert.silenced_by],
      ["Inhibited by", alert.inhibited_by],
      ["Id", alert.id],
    ].filter(([, value]) => value !== null && value !== undefined && value !== "")));
}

function timelineOf(detail) {
  if (!detail.timeline.length) return h("p", { class: "muted" }, "No history yet.");
  return h("ol", { class: "timeline" }, detail.timeline.map((entry) =>
    h("li", { dataset: { kind: entry.kind } },
      h("span", { class: "time" }, formatTime(entry.at)),
      badge(entry.kind, entry.kind === "acknowledged" || entry.kind === "unacknowledged" ? "info" : entry.kind),
      h("span", { class: "msg" }, entry.text, entry.value !== undefined && entry.value !== null ? ` (${withUnit(entry.value, detail.unit)})` : ""))));
}

function relatedOf(detail) {
  return h("p", null, h("a", { class: "search-link", href: detail.search_url, "data-nav": true }, "Events around this alert in search"),
    h("span", { class: "muted" }, " · its region's (or service's) events from before it started until it resolved or now."));
}

function deliveriesOf(detail) {
  const note = detail.slack_configured ? null : h("p", { class: "muted" }, "No Slack webhook is configured: alerts are kept and shown, not sent.");
  if (!detail.deliveries.length) return h("div", null, h("p", { class: "muted" }, "No Slack message for this alert."), note);
  return h("div", null, h("div", { class: "table-wrap" }, h("table", { class: "stack", "aria-label": "Slack messages" },
    h("thead", null, h("tr", null, ["Message", "Status", "Attempts", "Created", "Sent", "Last error"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, detail.deliveries.map((d) => h("tr", null,
      cell("Message", null, d.notice),
      cell("Status", null, badge(d.status, d.status === "delivered" ? "ok" : d.status === "failed" || d.status === "expired" ? "failed" : "pending")),
      cell("Attempts", { class: "num" }, String(d.attempts)),
      cell("Created", { class: "time" }, formatTime(d.created_at)),
      cell("Sent", { class: "time" }, d.delivered_at ? formatTime(d.delivered_at) : "–"),
      cell("Last error", { class: "msg" }, d.last_error ?? "–")))))), note);
}

/** Values over time ({t, v}) with the rule's limits as dashed lines and a band shaded. */
function valueChart(points, { width, limits, band, unit, started }) {
  const height = 200;
  const pad = { left: 48, right: 10, top: 10, bottom: 24 };
  const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1);
  const values = [...points.map((p) => p.v), ...limits.map((l) => l.v), ...(band ? [band.lower, band.upper] : [])].filter(Number.isFinite);
  let v0 = Math.min(...values), v1 = Math.max(...values);
  if (v1 - v0 < 1) { v0 -= 0.5; v1 += 0.5; }
  const ticks = niceTicks(v0, v1, 4);
  if (ticks.length > 1) {
    const gap = ticks[1] - ticks[0];
    v0 = Math.floor(v0 / gap) * gap;
    v1 = Math.ceil(v1 / gap) * gap;
  }
  const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - v0) / (v1 - v0)) * (height - pad.top - pad.bottom);
  const svg = s("svg", { class: "chart value-chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${points.length} values from ${formatTime(t0)} to ${formatTime(t1)}` });
  const grid = s("g", { class: "grid" }), axis = s("g", { class: "axis" });
  for (const tick of niceTicks(v0, v1, 4)) {
    grid.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }));
    axis.append(s("text", { x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end" }, `${tick}${unit === "°C" ? "°" : ""}`));
  }
  for (const tick of timeTicks(t0, t1, Math.max(2, Math.floor(width / 120)))) {
    if (x(tick) < pad.left + 20 || x(tick) > width - pad.right - 24) continue;
    axis.append(s("text", { x: x(tick), y: height - 6, "text-anchor": "middle" }, tickLabel(new Date(tick), t1 - t0)));
  }
  svg.append(grid, axis);
  if (band && Number.isFinite(band.lower) && Number.isFinite(band.upper)) {
    svg.append(s("rect", { class: "band", x: pad.left, width: width - pad.left - pad.right, y: y(band.upper), height: Math.max(1, y(band.lower) - y(band.upper)) },
      s("title", null, `Forecast range ${withUnit(band.lower, unit)} to ${withUnit(band.upper, unit)}`)));
  }
  for (const limit of limits) {
    svg.append(s("g", { class: "limit" }, s("line", { x1: pad.left, x2: width - pad.right, y1: y(limit.v), y2: y(limit.v) }),
      s("text", { x: width - pad.right - 4, y: y(limit.v) - 4, "text-anchor": "end" }, limit.label)));
  }
  if (started >= t0 && started <= t1) {
    svg.append(s("g", { class: "now" }, s("line", { x1: x(started), x2: x(started), y1: pad.top, y2: height - pad.bottom }), s("text", { x: x(started) + 4, y: pad.top + 10 }, "started")));
  }
  let d = "";
  points.forEach((p, i) => { d += `${i ? "L" : "M"}${x(p.t).toFixed(1)} ${y(p.v).toFixed(1)}`; });
  svg.append(s("path", { class: "series-observed", d }));
  return svg;
}
