// Saved searches (server-side, `/api/saved-searches`; saving and deleting need the API token
// like every change) and the query history (this browser only, in localStorage: the last
// 20 distinct queries, newest first).

import { api } from "./api.js";
import { h, replace, unavailable } from "./dom.js";
import { tokenForm, tokenHint } from "./alerts.js";

const HISTORY_KEY = "windsock.queryHistory";
export const HISTORY_SIZE = 20;

/** The queries run in this browser, newest first. */
export function queryHistory() {
  try {
    const list = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
    return Array.isArray(list) ? list.filter((q) => typeof q === "string").slice(0, HISTORY_SIZE) : [];
  } catch {
    return [];
  }
}

/** Puts `query` first in the history (once: an earlier copy moves up), keeping 20. */
export function remember(query) {
  const q = query.trim();
  if (!q || q === "*") return queryHistory();
  const list = [q, ...queryHistory().filter((old) => old !== q)].slice(0, HISTORY_SIZE);
  try {
    localStorage.setItem(HISTORY_KEY, JSON.stringify(list));
  } catch {
    // Storage full or off: the history is a convenience.
  }
  return list;
}

/**
 * The saved searches panel: a form saving the current search under a name, and the list,
 * each a link opening it and a delete button. `current()` gives what to save
 * ({query, from, to, columns}); `open(saved)` opens one.
 */
export class SavedSearches {
  constructor({ current, open }) {
    this.current = current;
    this.open = open;
    this.name = h("input", { id: "saved-name", type: "text", maxlength: "100", autocomplete: "off", placeholder: "Name this search", "aria-label": "Name of the saved search", required: true });
    this.message = h("p", { class: "muted saved-message", role: "status" });
    this.list = h("ul", { class: "saved-list", "aria-label": "Saved searches" });
    this.element = h("section", { class: "panel saved", "aria-label": "Saved searches" },
      h("h3", null, "Saved searches"),
      h("form", { class: "saved-form", onsubmit: (e) => { e.preventDefault(); this.save(); } },
        this.name, h("button", { type: "submit", class: "ghost small" }, "Save")),
      this.message, this.list,
      // Saving and deleting need the token when the server has one, as on the alerts page.
      h("details", { class: "saved-token" }, h("summary", null, "API token"), tokenForm()));
    this.load();
  }

  async load() {
    try {
      const answer = await api("/api/saved-searches");
      this.render(answer.saved_searches);
    } catch (err) {
      replace(this.list, h("li", null, unavailable("Saved searches", err)));
    }
  }

  render(searches) {
    this.searches = searches;
    if (!searches.length) {
      replace(this.list, h("li", { class: "muted" }, "None yet: name the search above and save it."));
      return;
    }
    replace(this.list, searches.map((saved) => h("li", { dataset: { id: saved.id } },
      h("button", { type: "button", class: "link saved-open", title: saved.query || "every event", onclick: () => this.open(saved) }, saved.name),
      h("span", { class: "muted saved-query" }, saved.query || "*"),
      h("button", { type: "button", class: "ghost small saved-delete", "aria-label": `Delete the saved search ${saved.name}`, onclick: () => this.remove(saved) }, "×"))));
  }

  async save() {
    const name = this.name.value.trim();
    if (!name) return;
    try {
      const saved = await api("/api/saved-searches", { method: "POST", body: { name, ...this.current() } });
      this.name.value = "";
      this.message.textContent = `Saved “${saved.name}”.`;
      await this.load();
    } catch (err) {
      this.message.textContent = `Not saved: ${tokenHint(err)}`;
    }
  }

  async remove(saved) {
    try {
      await api(`/api/saved-searches/${encodeURIComponent(saved.id)}`, { method: "DELETE" });
      this.message.textContent = `Deleted “${saved.name}”.`;
      await this.load();
    } catch (err) {
      this.message.textContent = `Not deleted: ${tokenHint(err)}`;
    }
  }
}
