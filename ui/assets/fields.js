// The search page's field explorer: every field of the loaded hits (not only the four
// facets), each with how many hits have it and its top values, and actions: add it as a
// column, sort by it (numeric fields), filter on a value (the fields a filter can name).
// Values are counted over the hits loaded; a facet's come from the server's counts over
// every hit of the search.

import { h } from "./dom.js";
import { NUMERIC_FIELDS } from "./aggregate.js";

/** How many values each field lists. */
export const TOP_VALUES = 5;
/** The longest value text counted as it is (longer ones are cut: a message is not a value to count). */
const MAX_VALUE_CHARS = 80;

/** Every leaf of `value` as [dotted.path, text]; arrays as their items joined. */
export function leaves(value, prefix = "", out = []) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) leaves(inner, prefix ? `${prefix}.${key}` : key, out);
  } else if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== "object")) out.push([prefix, value.join(", ")]);
    else out.push([prefix, `[${value.length} items]`]);
  } else if (value !== undefined) {
    out.push([prefix, value === null ? "null" : String(value)]);
  }
  return out;
}

/** A hit's value of the field `path` (as `leaves` names it), or "". */
export function valueOf(hit, path) {
  let current = hit.event;
  for (const part of path.split(".")) {
    if (current === null || typeof current !== "object") return "";
    current = current[part];
  }
  if (current === undefined) return "";
  if (current !== null && typeof current === "object") return Array.isArray(current) ? current.join(", ") : JSON.stringify(current);
  return current === null ? "null" : String(current);
}

/**
 * Each field of `hits`: its name, how many of the hits have it, its top values (most hits
 * first) and whether its values are numbers. `facets` (the search answer's, counted over
 * every hit) give the values of the fields they cover. Fields present in most hits first.
 */
export function fieldStats(hits, facets = {}) {
  const fields = new Map();
  for (const hit of hits) {
    for (const [name, text] of leaves(hit.event)) {
      if (!name) continue;
      let field = fields.get(name);
      if (!field) fields.set(name, (field = { name, present: 0, counts: new Map(), numeric: true }));
      field.present += 1;
      const value = text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}…` : text;
      field.counts.set(value, (field.counts.get(value) || 0) + 1);
      if (field.numeric && !(text !== "" && Number.isFinite(Number(text)))) field.numeric = false;
    }
  }
  return [...fields.values()]
    .map((field) => {
      const server = facets[field.name];
      const values = server && server.length
        ? server.filter((v) => v.value !== "").slice(0, TOP_VALUES).map((v) => ({ value: v.value, count: v.count, overall: true }))
        : [...field.counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, TOP_VALUES).map(([value, count]) => ({ value, count, overall: false }));
      return { name: field.name, present: field.present, distinct: field.counts.size, numeric: field.numeric, values };
    })
    .sort((a, b) => b.present - a.present || a.name.localeCompare(b.name));
}

/** The attributes that are an event's own time (the indexer's `timestamp`): sorting by one
 * sorts by time, newest or oldest first. */
export const TIME_FIELDS = ["timestamp", "observed_at", "generated_at", "at"];

/** Whether the indexer sorts hits by this field (`sort=FIELD:desc`, or by time). */
export function sortable(name) {
  return NUMERIC_FIELDS.includes(name) || TIME_FIELDS.includes(name);
}

/** The page's `sort` for this field, highest (newest) first when `descending`. */
export function sortFor(name, descending) {
  if (TIME_FIELDS.includes(name)) return descending ? "" : "oldest";
  return `${name}:${descending ? "desc" : "asc"}`;
}

/**
 * The explorer's panel for `stats` of `loaded` hits. `actions`: `columns` (those shown),
 * `sort` (the current), `open` (a Set of the fields shown open, kept across redraws, as a
 * live refresh redraws the list), `onColumn(name, add)`, `onSort(name, descending)`,
 * `onFilter(name, value, exclude)`, `filterable(name)`.
 */
export function fieldExplorer(stats, loaded, actions) {
  const items = stats.map((field) => {
    const shown = actions.columns.includes(field.name);
    const buttons = [
      h("button", { type: "button", class: "ghost small field-column", "aria-pressed": String(shown), "aria-label": `${shown ? "Remove" : "Add"} the column ${field.name}`, onclick: () => actions.onColumn(field.name, !shown) }, shown ? "− column" : "+ column"),
    ];
    if (sortable(field.name)) {
      const down = actions.sort === sortFor(field.name, true);
      buttons.push(h("button", { type: "button", class: "ghost small field-sort", "aria-label": `Sort by ${field.name}, ${down ? "lowest" : "highest"} first`, onclick: () => actions.onSort(field.name, !down) }, down ? "sort ↑" : "sort ↓"));
    }
    const canFilter = actions.filterable(field.name);
    return h("li", { class: "field-entry", dataset: { field: field.name } },
      h("details", { open: actions.open.has(field.name), ontoggle: (e) => { if (e.target.open) actions.open.add(field.name); else actions.open.delete(field.name); } },
        h("summary", null,
          h("span", { class: "field-name" }, field.name),
          h("span", { class: "count", title: `${field.present} of ${loaded} loaded hits have it; ${field.distinct} distinct values` }, `${field.present}/${loaded}`)),
        h("div", { class: "field-actions" }, buttons),
        h("ol", { class: "field-values", "aria-label": `Top values of ${field.name}${field.values[0] && field.values[0].overall ? " over every hit" : " in the loaded hits"}` },
          field.values.map((v) => h("li", { dataset: { value: v.value } },
            h("span", { class: "value", title: v.value }, v.value),
            h("span", { class: "count" }, v.count.toLocaleString()),
            canFilter ? [
              h("button", { type: "button", class: "ghost small", "aria-label": `Filter for ${field.name}: ${v.value}`, onclick: () => actions.onFilter(field.name, v.value, false) }, "+"),
              h("button", { type: "button", class: "ghost small", "aria-label": `Filter out ${field.name}: ${v.value}`, onclick: () => actions.onFilter(field.name, v.value, true) }, "−"),
            ] : null)))));
  });
  return h("section", { class: "panel fields", "aria-label": "Fields of the hits" },
    h("h3", null, "Fields ", h("span", { class: "muted" }, `(${stats.length}, in ${loaded} hits loaded)`)),
    stats.length ? h("ul", { class: "field-list" }, items) : h("p", { class: "muted" }, "no hits loaded"));
}
