// "Alert on this search": a form on the search page that turns the current search into a
// query rule (`POST /api/rules`, with the API token given for this tab, as silences are).
// The alerter counts the events matching the search over a window and pages when the count
// is above (or below) a number; the rule is listed with origin "api" by GET /api/rules.

import { api } from "./api.js";
import { h } from "./dom.js";
import { tokenHint } from "./alerts.js";

const WINDOWS = [["1m", "1 minute"], ["5m", "5 minutes"], ["15m", "15 minutes"], ["1h", "1 hour"], ["24h", "24 hours"]];
const GROUPS = [["", "nothing (one alert)"], ["region", "region"], ["service", "service"], ["level", "level"], ["source", "source"]];

/** A name a rule may take (letters, digits, `_`, `-`, `.`), from the search's words. */
function suggestedName(query) {
  const words = query.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  return (words || "search").slice(0, 60) + "_alert";
}

/**
 * The button and its form; `query()` gives the search to alert on (the query as the search
 * ran it, filters included).
 */
export class AlertRuleForm {
  constructor(query) {
    this.query = query;
    this.name = h("input", { id: "rule-name", type: "text", maxlength: "100", autocomplete: "off", required: true, pattern: "[A-Za-z0-9_.\\-]+" });
    this.window = h("select", { id: "rule-window" }, WINDOWS.map(([value, label]) => h("option", { value }, label)));
    this.direction = h("select", { id: "rule-direction", "aria-label": "Above or below" },
      h("option", { value: "above" }, "more than"), h("option", { value: "below" }, "fewer than"));
    this.count = h("input", { id: "rule-count", type: "number", min: "0", step: "1", value: "10", required: true, "aria-label": "Number of events" });
    this.groupBy = h("select", { id: "rule-group-by" }, GROUPS.map(([value, label]) => h("option", { value }, label)));
    this.severity = h("select", { id: "rule-severity" },
      ["warning", "critical", "info"].map((s) => h("option", { value: s }, s)));
    this.message = h("p", { class: "muted alert-rule-message", role: "status" });
    this.searchText = h("code", { class: "alert-rule-query" });
    this.form = h("form", { class: "alert-rule-form", hidden: true, onsubmit: (e) => { e.preventDefault(); this.create(); } },
      h("p", { class: "muted" }, "Alert when events matching ", this.searchText, " are counted:"),
      h("div", { class: "field" }, h("label", { for: "rule-name" }, "Rule name"), this.name),
      h("div", { class: "field" }, h("label", { for: "rule-direction" }, "When there are"), h("span", null, this.direction, " ", this.count)),
      h("div", { class: "field" }, h("label", { for: "rule-window" }, "within"), this.window),
      h("div", { class: "field" }, h("label", { for: "rule-group-by" }, "One alert per"), this.groupBy),
      h("div", { class: "field" }, h("label", { for: "rule-severity" }, "Severity"), this.severity),
      // Creating a rule needs the token when the server has one, as silences do: the one
      // given for this tab (the saved searches' panel beside this one sets it).
      h("button", { type: "submit", id: "rule-create", class: "small" }, "Create the rule"));
    this.toggle = h("button", { type: "button", id: "alert-on-search", class: "ghost small", "aria-expanded": "false", onclick: () => this.open() }, "Alert on this search");
    this.element = h("section", { class: "panel alert-rule", "aria-label": "Alert on this search" }, this.toggle, this.form, this.message);
  }

  open() {
    const shown = this.form.hidden;
    this.form.hidden = !shown;
    this.toggle.setAttribute("aria-expanded", String(shown));
    if (!shown) return;
    const query = this.query();
    this.searchText.textContent = query || "*";
    if (!this.name.value) this.name.value = suggestedName(query);
    this.message.textContent = "";
    this.name.focus();
  }

  async create() {
    const body = {
      kind: "query",
      name: this.name.value.trim(),
      query: this.query() || "*",
      window: this.window.value,
      severity: this.severity.value,
    };
    body[this.direction.value] = Number(this.count.value);
    if (this.groupBy.value) body.group_by = this.groupBy.value;
    try {
      const rule = await api("/api/rules", { method: "POST", body });
      this.message.textContent = `Rule ${rule.name} created: it counts matching events from now on (see Alerts).`;
      this.form.hidden = true;
      this.toggle.setAttribute("aria-expanded", "false");
    } catch (err) {
      this.message.textContent = tokenHint(err);
    }
  }
}
