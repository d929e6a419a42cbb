// Alerts: firing and resolved alerts with their history, failed deliveries, rules, and
// silences (create with matchers and a duration, expire). Changes send the API token the
// user gave for this tab; it is kept in sessionStorage and never shown.

import { api, token, withQuery } from "./api.js";
import { h, replace, badge, unavailable, announce } from "./dom.js";
import { ago, duration, formatTime, parseDuration } from "./time.js";

const REFRESH_MS = 10e3;
// The outbox statuses that mean a message will not reach Slack.
const FAILED = new Set(["failed", "expired"]);

export function render(main) {
  return new AlertsPage(main);
}

/** The alerts of an `/api/alerts` answer (`{alerts: [{alert, deliveries}]}`), each with its deliveries. */
export function alertsOf(answer) {
  return answer.alerts.map((item) => ({ ...item.alert, deliveries: item.deliveries }));
}

class AlertsPage {
  constructor(main) {
    this.firing = h("div");
    this.resolved = h("div");
    this.silences = h("div");
    this.deliveries = h("div");
    this.rules = h("div");
    this.openHistory = new Set();
    this.ruleNames = h("datalist", { id: "rule-names" });
    this.regionNames = h("datalist", { id: "region-names" });
    replace(main,
      h("h1", null, "Alerts"),
      this.tokenForm(),
      h("section", { "aria-labelledby": "firing-h" }, h("h2", { id: "firing-h" }, "Firing"), this.firing),
      h("section", { "aria-labelledby": "silences-h" }, h("h2", { id: "silences-h" }, "Silences"), this.silenceForm(), this.silences),
      h("section", { "aria-labelledby": "deliveries-h" }, h("h2", { id: "deliveries-h" }, "Failed deliveries"), this.deliveries),
      h("section", { "aria-labelledby": "resolved-h" }, h("h2", { id: "resolved-h" }, "Resolved"), this.resolved),
      h("section", { "aria-labelledby": "rules-h" }, h("h2", { id: "rules-h" }, "Rules"), this.rules),
      this.ruleNames, this.regionNames);
    this.load();
    this.timer = setInterval(() => { if (!document.hidden) this.load(); }, REFRESH_MS);
  }

  tokenForm() {
    const input = h("input", { id: "api-token", type: "password", autocomplete: "off", placeholder: token.get() ? "a token is set for this tab" : "needed when the server has one" });
    const state = h("span", { class: "muted", role: "status" }, token.get() ? "Token set for this tab." : "No token set.");
    const refresh = () => {
      input.value = "";
      input.placeholder = token.get() ? "a token is set for this tab" : "needed when the server has one";
      state.textContent = token.get() ? "Token set for this tab." : "No token set.";
    };
    return h("form", { class: "token panel", onsubmit: (e) => { e.preventDefault(); token.set(input.value.trim()); refresh(); } },
      h("div", { class: "field" }, h("label", { for: "api-token" }, "API token (kept for this tab only)"), input),
      h("button", { type: "submit", class: "ghost" }, "Use token"),
      h("button", { type: "button", class: "ghost", onclick: () => { token.set(""); refresh(); } }, "Forget token"),
      state);
  }

  silenceForm() {
    const field = (id, label, attrs) => h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, name: id, ...attrs }));
    this.silenceError = h("p", { class: "notice error", role: "alert", hidden: true });
    const form = h("form", { class: "silence-form panel", "aria-label": "New silence", onsubmit: (e) => { e.preventDefault(); this.createSilence(form); } },
      field("silence-rule", "Rule (empty: any)", { list: "rule-names", autocomplete: "off" }),
      field("silence-region", "Region (empty: any)", { list: "region-names", autocomplete: "off" }),
      field("silence-duration", "Duration", { value: "2h", required: true, pattern: "(\\d+\\s*[smhdw]\\s*)+", title: "such as 30m, 2h, 1d" }),
      field("silence-author", "Author", { required: true, autocomplete: "name" }),
      field("silence-comment", "Comment", { required: true }),
      h("button", { type: "submit" }, "Create silence"));
    return h("div", null, form, this.silenceError);
  }

  async createSilence(form) {
    const value = (id) => form.querySelector(`#${id}`).value.trim();
    const ms = parseDuration(value("silence-duration"));
    this.silenceError.hidden = true;
    if (!ms) {
      this.showSilenceError("The duration must look like 30m, 2h or 1d.");
      return;
    }
    const rule = value("silence-rule"), region = value("silence-region");
    if (!rule && !region) {
      this.showSilenceError("Give a rule, a region, or both: a silence of everything is not allowed here.");
      return;
    }
    try {
      await api("/api/silences", {
        method: "POST",
        body: { rule: rule || undefined, region: region || undefined, duration: value("silence-duration"), author: value("silence-author"), comment: value("silence-comment") },
      });
      form.querySelector("#silence-comment").value = "";
      announce("Silence created");
      this.load();
    } catch (err) {
      this.showSilenceError(err.status === 401 || err.status === 403 ? `${err.message} (set the API token above)` : err.message);
    }
  }

  showSilenceError(text) {
    this.silenceError.textContent = text;
    this.silenceError.hidden = false;
  }

  async expire(silence) {
    try {
      await api(`/api/silences/${encodeURIComponent(silence.id)}`, { method: "DELETE" });
      announce("Silence expired");
      this.load();
    } catch (err) {
      this.showSilenceError(err.status === 401 || err.status === 403 ? `${err.message} (set the API token above)` : err.message);
    }
  }

  async load() {
    const [firing, all, silences, deliveries, rules, regions] = await Promise.allSettled([
      api(withQuery("/api/alerts", { state: "firing" })),
      api(withQuery("/api/alerts", { state: "all" })),
      api("/api/silences"),
      api("/api/deliveries"),
      api("/api/rules"),
      api("/api/regions"),
    ]);
    const settle = (result, what, draw) => (result.status === "fulfilled" ? draw(result.value) : unavailable(what, result.reason));
    replace(this.firing, settle(firing, "Alerts", (v) => this.alertTable(alertsOf(v), "No alert is firing.")));
    replace(this.resolved, settle(all, "Alerts", (v) => this.alertTable(alertsOf(v).filter((a) => String(a.state).toLowerCase() === "resolved").slice(0, 100), "No resolved alerts.")));
    replace(this.silences, settle(silences, "Silences", (v) => this.silenceTable(v.silences)));
    replace(this.deliveries, settle(deliveries, "Deliveries", (v) => deliveryTable(v)));
    replace(this.rules, settle(rules, "Rules", (v) => ruleTable(v.rules)));
    // One entry per alert name: the names a silence's `rule` takes.
    if (rules.status === "fulfilled") replace(this.ruleNames, [...new Set(rules.value.rules.map((r) => r.name))].map((n) => h("option", { value: n })));
    if (regions.status === "fulfilled") replace(this.regionNames, regions.value.regions.map((r) => h("option", { value: r.name })));
  }

  alertTable(alerts, empty) {
    if (!alerts.length) return h("p", { class: "muted" }, empty);
    const tbody = h("tbody");
    for (const alert of alerts) {
      const id = alert.id;
      const history = h("tr", { class: "detail", hidden: !this.openHistory.has(id) }, h("td", { colspan: "7" }));
      const toggle = h("button", { type: "button", class: "ghost small", "aria-expanded": String(this.openHistory.has(id)), onclick: () => {
        const open = history.hidden;
        history.hidden = !open;
        toggle.setAttribute("aria-expanded", String(open));
        if (open) { this.openHistory.add(id); this.loadHistory(id, history.firstChild); } else this.openHistory.delete(id);
      } }, "History");
      const value = alert.value !== undefined && alert.value !== null ? `${alert.value}${alert.expected ? ` (expected ${alert.expected})` : ""}` : alert.expected ?? "";
      tbody.append(h("tr", { class: "alert-row", dataset: { state: alert.state, rule: alert.rule } },
        h("td", null, badge(alert.state), " ", badge(alert.severity),
          alert.silenced_by ? [" ", badge("silenced", "info")] : null, alert.inhibited_by ? [" ", badge("inhibited", "info")] : null),
        h("td", null, alert.rule),
        h("td", null, alert.region ? h("a", { href: `/regions/${encodeURIComponent(alert.region)}`, "data-nav": true }, String(alert.region)) : "–"),
        h("td", { class: "time" }, formatTime(alert.started_at), h("br"), h("span", { class: "muted" }, alert.state === "resolved" && alert.resolved_at ? `lasted ${duration(Date.parse(alert.resolved_at) - Date.parse(alert.started_at))}` : ago(alert.started_at))),
        h("td", null, String(value)),
        h("td", { class: "msg" }, alert.summary),
        h("td", null, toggle)));
      tbody.append(history);
      if (this.openHistory.has(id)) this.loadHistory(id, history.firstChild);
    }
    return h("div", { class: "table-wrap" }, h("table", { "aria-label": "Alerts" },
      h("thead", null, h("tr", null, ["State", "Rule", "Region", "Since", "Value", "Message", ""].map((c) => h("th", { scope: "col" }, c)))),
      tbody));
  }

  async loadHistory(id, cell) {
    replace(cell, h("span", { class: "muted" }, "Loading history…"));
    try {
      const answer = await api(`/api/alerts/${encodeURIComponent(id)}/history`);
      const changes = answer.history.map((entry) => entry.event);
      replace(cell, changes.length
        ? h("ol", null, changes.map((c) => h("li", null, h("span", { class: "time" }, formatTime(c.at)), " ", badge(c.state), " ", c.message, c.value !== undefined ? ` (value ${c.value})` : "")))
        : h("span", { class: "muted" }, "No history."));
    } catch (err) {
      replace(cell, unavailable("History", err));
    }
  }

  silenceTable(silences) {
    if (!silences.length) return h("p", { class: "muted" }, "No silences.");
    return h("div", { class: "table-wrap" }, h("table", { "aria-label": "Silences" },
      h("thead", null, h("tr", null, ["State", "Matchers", "Starts", "Ends", "Author", "Comment", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, silences.map((silence) => {
        // `status` is the server's (pending, active, expired), by its clock.
        const state = silence.status;
        return h("tr", { class: "silence-row", dataset: { id: silence.id, status: state } },
          h("td", null, badge(state, state === "active" ? "active" : "resolved")),
          h("td", null, matchersText(silence)),
          h("td", { class: "time" }, formatTime(silence.starts_at)),
          h("td", { class: "time" }, formatTime(silence.ends_at)),
          h("td", null, silence.author),
          h("td", null, silence.comment),
          h("td", null, state !== "expired" ? h("button", { type: "button", class: "ghost small", onclick: () => this.expire(silence) }, "Expire") : null));
      }))));
  }

  stop() {
    clearInterval(this.timer);
  }
}

/** What a silence matches: its `rule` and `region`, each absent when it matches any. */
function matchersText(silence) {
  return [silence.rule ? `rule=${silence.rule}` : null, silence.region ? `region=${silence.region}` : null].filter(Boolean).join(", ") || "everything";
}

/** The failed messages of a `/api/deliveries` answer, with the counts per status. */
function deliveryTable(answer) {
  const failed = answer.deliveries.filter((d) => FAILED.has(d.status));
  const counts = Object.entries(answer.counts).map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ");
  const note = h("p", { class: "muted" }, `Messages: ${counts}.`,
    answer.slack_configured ? "" : " No Slack webhook is configured: alerts are kept and shown, not sent.",
    answer.outbox_durable ? "" : " The outbox cannot write to disk now: some messages are held in memory only.");
  if (!failed.length) return h("div", null, h("p", { class: "muted" }, "No failed deliveries."), note);
  return h("div", { class: "table-wrap" }, h("table", { "aria-label": "Failed deliveries" },
    h("thead", null, h("tr", null, ["Status", "Alert", "Attempts", "Last error", "At"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, failed.map((d) => h("tr", null,
      h("td", null, badge(d.status, "failed")),
      h("td", null, [d.notice, d.rule, d.region].filter(Boolean).join(" · ")),
      h("td", { class: "num" }, String(d.attempts)),
      h("td", { class: "msg" }, d.last_error ?? ""),
      h("td", { class: "time" }, formatTime(d.updated_at)))))), note);
}

function ruleTable(rules) {
  if (!rules.length) return h("p", { class: "muted" }, "No rules.");
  return h("div", { class: "table-wrap" }, h("table", { "aria-label": "Rules" },
    h("thead", null, h("tr", null, ["Rule", "Kind", "Active", "Settings"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, rules.map((r) => {
      // `config` is the rule's `[[alerter.rules]]` entry; absent for built-in rules.
      const settings = { ...(r.config || {}) };
      delete settings.name;
      delete settings.kind;
      return h("tr", null,
        h("td", null, r.name),
        h("td", null, r.kind),
        h("td", { class: "num" }, `${r.active} of ${r.evaluation.length}`),
        h("td", { class: "msg" }, Object.entries(settings).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ")));
    }))));
}
