// Alerts: firing and pending alerts (critical first), resolved ones, filtered by severity,
// rule, region and state (all in the URL), each linking to its own page; silences (create
// with matchers and a duration, expire), failed deliveries and rules. Changes send the API
// token the user gave for this tab; it is kept in sessionStorage and never shown.

import { api, token, withQuery } from "./api.js";
import { h, replace, badge, unavailable, announce } from "./dom.js";
import { ago, duration, formatTime, parseDuration } from "./time.js";

const REFRESH_MS = 10e3;
// The outbox statuses that mean a message will not reach Slack.
const FAILED = new Set(["failed", "expired"]);
/** Severities, worst first. */
export const SEVERITIES = ["critical", "warning", "info"];
const STATES = ["firing", "pending", "resolved"];

export function render(main) {
  return new AlertsPage(main);
}

/** The alerts of an `/api/alerts` answer (`{alerts: [{alert, deliveries}]}`), each with its deliveries. */
export function alertsOf(answer) {
  return answer.alerts.map((item) => ({ ...item.alert, deliveries: item.deliveries }));
}

const severityRank = (alert) => {
  const rank = SEVERITIES.indexOf(String(alert.severity));
  return rank < 0 ? SEVERITIES.length : rank;
};

/** A copy of `alerts`, worst severity first, then the most recent first. */
export function bySeverity(alerts) {
  return alerts.slice().sort((a, b) => severityRank(a) - severityRank(b) || Date.parse(b.started_at) - Date.parse(a.started_at));
}

/** The path of an alert's own page. */
export function alertPath(alert) {
  return `/alerts/${encodeURIComponent(alert.id)}`;
}

/** A value for people: at most one decimal. */
export function valueText(value) {
  return value === undefined || value === null ? "–" : Number(value).toLocaleString("en", { maximumFractionDigits: 1, useGrouping: false });
}

/** A table cell that says which column it is when the table turns into cards on a phone. */
export function cell(label, attrs, ...children) {
  // One element inside: a stacked cell lays out its label and its value side by side.
  return h("td", { ...attrs, "data-label": label || undefined }, h("span", { class: "cell-value" }, ...children));
}

/** Refusals for want of the token name the cure. */
export function tokenHint(err) {
  return err.status === 401 || err.status === 403 ? `${err.message} (set the API token on this page)` : err.message;
}

/** The API token form (the token is kept for this tab only). */
export function tokenForm() {
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

const AUTHOR_KEY = "windsock.author";
/** The name a person gave last (acknowledgements and silences), remembered in this browser. */
export const author = {
  get: () => localStorage.getItem(AUTHOR_KEY) || "",
  set: (value) => (value ? localStorage.setItem(AUTHOR_KEY, value) : localStorage.removeItem(AUTHOR_KEY)),
};

/**
 * The form that creates a silence: `prefill` gives its rule, region and duration (2 h when
 * not given); `onCreated` runs after the API took it. Returns the element and its fields.
 */
export function silenceForm({ rule = "", region = "", duration: length = "2h", comment = "" } = {}, onCreated) {
  const field = (id, label, attrs) => h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, name: id, ...attrs }));
  const error = h("p", { class: "notice error", role: "alert", hidden: true });
  const showError = (text) => { error.textContent = text; error.hidden = false; };
  const form = h("form", { class: "silence-form panel", "aria-label": "New silence", onsubmit: async (e) => {
    e.preventDefault();
    const value = (id) => form.querySelector(`#${id}`).value.trim();
    error.hidden = true;
    if (!parseDuration(value("silence-duration"))) return showError("The duration must look like 30m, 2h or 1d.");
    const ruleName = value("silence-rule"), regionName = value("silence-region");
    if (!ruleName && !regionName) return showError("Give a rule, a region, or both: a silence of everything is not allowed here.");
    try {
      const created = await api("/api/silences", {
        method: "POST",
        body: { rule: ruleName || undefined, region: regionName || undefined, duration: value("silence-duration"), author: value("silence-author"), comment: value("silence-comment") },
      });
      author.set(value("silence-author"));
      form.querySelector("#silence-comment").value = "";
      announce("Silence created");
      if (onCreated) onCreated(created);
    } catch (err) {
      showError(tokenHint(err));
    }
  } },
  field("silence-rule", "Rule (empty: any)", { list: "rule-names", autocomplete: "off", value: rule }),
  field("silence-region", "Region (empty: any)", { list: "region-names", autocomplete: "off", value: region }),
  field("silence-duration", "Duration", { value: length, required: true, pattern: "(\\d+\\s*[smhdw]\\s*)+", title: "such as 30m, 2h, 1d" }),
  field("silence-author", "Author", { required: true, autocomplete: "name", value: author.get() }),
  field("silence-comment", "Comment", { required: true, value: comment }),
  h("button", { type: "submit" }, "Create silence"));
  return { element: h("div", null, form, error), form, showError };
}

/** The filters of the alerts page, as its URL says them. */
function filtersFromUrl() {
  const params = new URLSearchParams(location.search);
  const pick = (name, allowed) => {
    const value = params.get(name) || "";
    return allowed && !allowed.includes(value) ? "" : value;
  };
  return { state: pick("state", STATES), severity: pick("severity", SEVERITIES), rule: pick("rule"), region: pick("region") };
}

class AlertsPage {
  constructor(main) {
    this.filters = filtersFromUrl();
    this.firing = h("div");
    this.pending = h("div");
    this.resolved = h("div");
    this.silences = h("div");
    this.deliveries = h("div");
    this.rules = h("div");
    this.openHistory = new Set();
    this.ruleNames = h("datalist", { id: "rule-names" });
    this.regionNames = h("datalist", { id: "region-names" });
    this.filterBar = h("form", { class: "alert-filters panel", "aria-label": "Filter alerts", onsubmit: (e) => e.preventDefault() });
    this.silence = silenceForm({}, () => this.load());
    this.sections = {
      firing: h("section", { "aria-labelledby": "firing-h" }, h("h2", { id: "firing-h" }, "Firing"), this.firing),
      pending: h("section", { "aria-labelledby": "pending-h" }, h("h2", { id: "pending-h" }, "Pending"), this.pending),
      resolved: h("section", { "aria-labelledby": "resolved-h" }, h("h2", { id: "resolved-h" }, "Resolved"), this.resolved),
    };
    replace(main,
      h("h1", null, "Alerts"),
      tokenForm(),
      this.filterBar,
      this.sections.firing,
      this.sections.pending,
      h("section", { "aria-labelledby": "silences-h" }, h("h2", { id: "silences-h" }, "Silences"), this.silence.element, this.silences),
      h("section", { "aria-labelledby": "deliveries-h" }, h("h2", { id: "deliveries-h" }, "Failed deliveries"), this.deliveries),
      this.sections.resolved,
      h("section", { "aria-labelledby": "rules-h" }, h("h2", { id: "rules-h" }, "Rules"), this.rules),
      this.ruleNames, this.regionNames);
    this.drawFilters([], []);
    this.load();
    this.timer = setInterval(() => { if (!document.hidden) this.load(); }, REFRESH_MS);
  }

  /** Back and forward: the URL's filters again. */
  update() {
    this.filters = filtersFromUrl();
    this.drawFilters(this.knownRules || [], this.knownRegions || []);
    this.draw();
  }

  drawFilters(rules, regions) {
    const select = (name, label, values, any) => {
      const current = this.filters[name];
      const options = [...new Set([...values, current].filter(Boolean))];
      return h("div", { class: "field" }, h("label", { for: `filter-${name}` }, label),
        h("select", { id: `filter-${name}`, name, onchange: (e) => this.setFilter(name, e.target.value) },
          h("option", { value: "", selected: !current }, any),
          options.map((v) => h("option", { value: v, selected: v === current }, v))));
    };
    replace(this.filterBar,
      select("state", "State", STATES, "all states"),
      select("severity", "Severity", SEVERITIES, "any severity"),
      select("rule", "Rule", rules, "any rule"),
      select("region", "Region", regions, "any region"),
      Object.values(this.filters).some(Boolean) ? h("button", { type: "button", class: "ghost", onclick: () => this.clearFilters() }, "Clear filters") : null);
  }

  setFilter(name, value) {
    this.filters = { ...this.filters, [name]: value };
    this.filtersChanged();
  }

  clearFilters() {
    this.filters = { state: "", severity: "", rule: "", region: "" };
    this.filtersChanged();
  }

  filtersChanged() {
    history.replaceState(null, "", withQuery("/alerts", this.filters));
    this.drawFilters(this.knownRules || [], this.knownRegions || []);
    this.draw();
  }

  matches(alert) {
    const f = this.filters;
    return (!f.severity || String(alert.severity) === f.severity) && (!f.rule || alert.rule === f.rule) && (!f.region || alert.region === f.region);
  }

  async load() {
    const [firing, pending, resolved, silences, deliveries, rules, regions] = await Promise.allSettled([
      api(withQuery("/api/alerts", { state: "firing", limit: 1000 })),
      api(withQuery("/api/alerts", { state: "pending", limit: 1000 })),
      api(withQuery("/api/alerts", { state: "resolved", limit: 200 })),
      api("/api/silences"),
      api("/api/deliveries"),
      api("/api/rules"),
      api("/api/regions"),
    ]);
    this.answers = { firing, pending, resolved };
    const settle = (result, what, draw) => (result.status === "fulfilled" ? draw(result.value) : unavailable(what, result.reason));
    replace(this.silences, settle(silences, "Silences", (v) => this.silenceTable(v.silences)));
    replace(this.deliveries, settle(deliveries, "Deliveries", (v) => deliveryTable(v)));
    replace(this.rules, settle(rules, "Rules", (v) => ruleTable(v.rules)));
    // One entry per alert name: the names a silence's `rule` takes.
    if (rules.status === "fulfilled") {
      this.knownRules = [...new Set(rules.value.rules.map((r) => r.name))].sort();
      replace(this.ruleNames, this.knownRules.map((n) => h("option", { value: n })));
    }
    if (regions.status === "fulfilled") {
      this.knownRegions = regions.value.regions.map((r) => r.name).sort((a, b) => a.localeCompare(b));
      replace(this.regionNames, this.knownRegions.map((n) => h("option", { value: n })));
    }
    this.drawFilters(this.knownRules || [], this.knownRegions || []);
    this.draw();
  }

  /** The alert sections, from the last answers, as the filters say. */
  draw() {
    if (!this.answers) return;
    const empty = { firing: "No alert is firing.", pending: "No alert is pending.", resolved: "No resolved alerts." };
    for (const state of STATES) {
      const section = this.sections[state];
      section.hidden = Boolean(this.filters.state) && this.filters.state !== state;
      const result = this.answers[state];
      const target = this[state];
      if (result.status === "rejected") {
        replace(target, unavailable("Alerts", result.reason));
        continue;
      }
      const all = alertsOf(result.value);
      const shown = bySeverity(all.filter((a) => this.matches(a)));
      const note = shown.length < all.length ? `${all.length - shown.length} more hidden by the filters.` : "";
      replace(target, this.alertTable(state === "resolved" ? shown.slice(0, 100) : shown, note && !shown.length ? `None matches the filters (${all.length} ${state}).` : empty[state]),
        note && shown.length ? h("p", { class: "muted" }, note) : null);
    }
  }

  async expire(silence) {
    try {
      await api(`/api/silences/${encodeURIComponent(silence.id)}`, { method: "DELETE" });
      announce("Silence expired");
      this.load();
    } catch (err) {
      this.silence.showError(tokenHint(err));
    }
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
      const value = alert.value !== undefined && alert.value !== null ? `${valueText(alert.value)}${alert.expected ? ` (expected ${alert.expected})` : ""}` : alert.expected ?? "–";
      const since = alert.state === "resolved" && alert.resolved_at ? `lasted ${duration(Date.parse(alert.resolved_at) - Date.parse(alert.started_at))}` : ago(alert.started_at);
      tbody.append(h("tr", { class: `alert-row severity-${alert.severity}`, dataset: { state: alert.state, rule: alert.rule, severity: alert.severity, id } },
        cell("State", null, badge(alert.state), " ", badge(alert.severity),
          alert.silenced_by ? [" ", badge("silenced", "info")] : null, alert.inhibited_by ? [" ", badge("inhibited", "info")] : null,
          alert.acknowledged_by ? [" ", h("span", { class: "badge info", title: `acknowledged by ${alert.acknowledged_by}` }, "acked")] : null),
        cell("Rule", null, h("a", { class: "alert-link", href: alertPath(alert), "data-nav": true }, alert.rule)),
        cell("Region", null, alert.region ? h("a", { href: `/regions/${encodeURIComponent(alert.region)}`, "data-nav": true }, String(alert.region)) : "–"),
        cell("Since", { class: "time" }, formatTime(alert.started_at), " ", h("span", { class: "muted" }, since)),
        cell("Value", null, String(value)),
        cell("Message", { class: "msg" }, alert.summary),
        cell("", { class: "actions" }, toggle)));
      tbody.append(history);
      if (this.openHistory.has(id)) this.loadHistory(id, history.firstChild);
    }
    return h("div", { class: "table-wrap" }, h("table", { class: "stack", "aria-label": "Alerts" },
      h("thead", null, h("tr", null, ["State", "Rule", "Region", "Since", "Value", "Message", ""].map((c) => h("th", { scope: "col" }, c)))),
      tbody));
  }

  async loadHistory(id, cell) {
    replace(cell, h("span", { class: "muted" }, "Loading history…"));
    try {
      const answer = await api(`/api/alerts/${encodeURIComponent(id)}/history`);
      const changes = answer.history.map((entry) => entry.event);
      replace(cell, changes.length
        ? h("ol", null, changes.map((c) => h("li", null, h("span", { class: "time" }, formatTime(c.at)), " ", badge(c.state), " ", c.message, c.value !== undefined && c.value !== null ? ` (value ${valueText(c.value)})` : "")))
        : h("span", { class: "muted" }, "No history."));
    } catch (err) {
      replace(cell, unavailable("History", err));
    }
  }

  silenceTable(silences) {
    if (!silences.length) return h("p", { class: "muted" }, "No silences.");
    return h("div", { class: "table-wrap" }, h("table", { class: "stack", "aria-label": "Silences" },
      h("thead", null, h("tr", null, ["State", "Matchers", "Starts", "Ends", "Author", "Comment", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, silences.map((silence) => {
        // `status` is the server's (pending, active, expired), by its clock.
        const state = silence.status;
        return h("tr", { class: "silence-row", dataset: { id: silence.id, status: state } },
          cell("State", null, badge(state, state === "active" ? "active" : "resolved")),
          cell("Matchers", null, matchersText(silence)),
          cell("Starts", { class: "time" }, formatTime(silence.starts_at)),
          cell("Ends", { class: "time" }, formatTime(silence.ends_at)),
          cell("Author", null, silence.author),
          cell("Comment", { class: "msg" }, silence.comment),
          cell("", { class: "actions" }, state !== "expired" ? h("button", { type: "button", class: "ghost small", onclick: () => this.expire(silence) }, "Expire") : null));
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
  return h("div", { class: "table-wrap" }, h("table", { class: "stack", "aria-label": "Failed deliveries" },
    h("thead", null, h("tr", null, ["Status", "Alert", "Attempts", "Last error", "At"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, failed.map((d) => h("tr", null,
      cell("Status", null, badge(d.status, "failed")),
      cell("Alert", null, [d.notice, d.rule, d.region].filter(Boolean).join(" · ")),
      cell("Attempts", { class: "num" }, String(d.attempts)),
      cell("Last error", { class: "msg" }, d.last_error ?? ""),
      cell("At", { class: "time" }, formatTime(d.updated_at)))))), note);
}

function ruleTable(rules) {
  if (!rules.length) return h("p", { class: "muted" }, "No rules.");
  return h("div", { class: "table-wrap" }, h("table", { class: "stack", "aria-label": "Rules" },
    h("thead", null, h("tr", null, ["Rule", "Kind", "Active", "Settings"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", null, rules.map((r) => {
      // `config` is the rule's `[[alerter.rules]]` entry; absent for built-in rules.
      // A setting left unset is null in the entry: not worth a `below=null`.
      const settings = Object.entries(r.config || {}).filter(([k, v]) => v !== null && v !== undefined && k !== "name" && k !== "kind");
      return h("tr", null,
        cell("Rule", null, r.name),
        cell("Kind", null, r.kind),
        cell("Active", { class: "num" }, `${r.active} of ${r.evaluation.length}`),
        cell("Settings", { class: "msg" }, settings.map(([k, v]) => `${k} = ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ") || "–"));
    }))));
}
