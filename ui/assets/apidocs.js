// The API viewer (`/api`): the OpenAPI 3.1 document the process serves at /api/openapi.json,
// generated from the handlers it runs, drawn as a page: operations grouped by tag, each with
// its parameters (and their bounds), request body and responses, and every schema with its
// fields. `$ref`s show as links to the schema they name. Built from the document alone, so
// it never disagrees with what is served.

import { api } from "./api.js";
import { h, replace, unavailable, badge, stacked } from "./dom.js";

const DOCUMENT = "/api/openapi.json";
const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
// Inline objects nest inside each other; past this depth the page says "object" and stops.
const MAX_DEPTH = 4;

export function render(main) {
  return new ApiPage(main);
}

class ApiPage {
  constructor(main) {
    this.main = main;
    replace(main, h("h1", null, "API"), h("p", { class: "muted", role: "status" }, `Loading ${DOCUMENT}…`));
    this.load();
  }

  async load() {
    let doc;
    try {
      doc = await api(DOCUMENT);
    } catch (err) {
      replace(this.main, h("h1", null, "API"), unavailable("The API document", err));
      return;
    }
    replace(this.main, new Viewer(doc).render());
    this.update();
  }

  /** A link to `#schema-X` (or a back/forward to one) scrolls to it, opening it. */
  update() {
    const id = decodeURIComponent(location.hash.slice(1));
    const target = id && document.getElementById(id);
    if (!target) return;
    if (target.tagName === "DETAILS") target.open = true;
    target.scrollIntoView();
  }
}

/** `#/components/schemas/Name` → `Name`; null for a reference outside the document. */
function refName(ref) {
  const match = /^#\/components\/[A-Za-z]+\/(.+)$/.exec(String(ref));
  return match ? decodeURIComponent(match[1].replace(/~1/g, "/").replace(/~0/g, "~")) : null;
}

const schemaId = (name) => `schema-${name}`;
const operationId = (method, path) => `op-${method}-${path.replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "")}`;

/** The document's descriptions are plain text with `code` spans and blank lines between
 * paragraphs: spans become <code>, as text nodes (never markup). */
function rich(text) {
  return String(text).split("`").map((part, i) => (i % 2 ? h("code", null, part) : part));
}

function paragraphs(text, cls) {
  if (!text) return null;
  return String(text).split(/\n\s*\n/).map((p) => h("p", { class: cls }, rich(p.trim())));
}

class Viewer {
  constructor(doc) {
    this.doc = doc;
    this.components = doc.components || {};
    this.schemas = this.components.schemas || {};
    this.expanded = new Set();
  }

  /** A `$ref`'s target in this document (parameters, request bodies, responses). */
  resolve(value) {
    if (!value || !value.$ref) return value;
    const match = /^#\/components\/([A-Za-z]+)\/(.+)$/.exec(value.$ref);
    const kind = match && this.components[match[1]];
    return (kind && kind[refName(value.$ref)]) || value;
  }

  render() {
    const info = this.doc.info || {};
    const operations = this.operations();
    const groups = this.groups(operations);
    const filter = h("input", { id: "api-filter", type: "search", autocomplete: "off", placeholder: "path, summary or schema", "aria-label": "Filter operations and schemas" });
    const count = h("span", { class: "muted", role: "status" });
    const page = h("div", { class: "api-doc" },
      h("h1", null, info.title || "API", info.version ? h("span", { class: "muted api-version" }, ` ${info.version}`) : null),
      paragraphs(info.description),
      h("p", null, "OpenAPI ", String(this.doc.openapi || "?"), " document: ", h("a", { href: DOCUMENT }, DOCUMENT),
        ` · ${operations.length} operations · ${Object.keys(this.schemas).length} schemas`),
      h("nav", { class: "panel api-toc", "aria-label": "API sections" },
        h("div", { class: "field" }, h("label", { for: "api-filter" }, "Filter"), filter), count,
        h("ul", null,
          groups.map(([tag, ops]) => h("li", null, h("a", { href: `#tag-${tag}` }, tag), h("span", { class: "muted" }, ` (${ops.length})`))),
          h("li", null, h("a", { href: "#schemas" }, "Schemas"), h("span", { class: "muted" }, ` (${Object.keys(this.schemas).length})`)))),
      groups.map(([tag, ops]) => this.tagSection(tag, ops)),
      h("section", { id: "schemas", "aria-labelledby": "schemas-h" },
        h("h2", { id: "schemas-h" }, "Schemas"),
        Object.keys(this.schemas).sort().map((name) => this.schemaSection(name))));
    filter.addEventListener("input", () => {
      const shown = applyFilter(page, filter.value.trim().toLowerCase());
      count.textContent = filter.value.trim() ? `${shown} shown` : "";
    });
    return page;
  }

  /** Every (method, path, operation) of the document, in the document's order. */
  operations() {
    const list = [];
    for (const [path, item] of Object.entries(this.doc.paths || {})) {
      for (const method of METHODS) {
        if (item[method]) list.push({ method, path, op: item[method], shared: item.parameters || [] });
      }
    }
    return list;
  }

  /** Operations by their first tag: the document's tag order first, then the rest by name. */
  groups(operations) {
    const byTag = new Map();
    for (const entry of operations) {
      const tag = (entry.op.tags && entry.op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(entry);
    }
    const order = (this.doc.tags || []).map((t) => t.name);
    const rank = (tag) => (order.includes(tag) ? order.indexOf(tag) : order.length);
    return [...byTag.entries()].sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
  }

  tagSection(tag, ops) {
    const about = (this.doc.tags || []).find((t) => t.name === tag);
    return h("section", { class: "api-tag", id: `tag-${tag}`, "aria-labelledby": `tag-${tag}-h` },
      h("h2", { id: `tag-${tag}-h` }, tag),
      about ? paragraphs(about.description, "muted") : null,
      ops.map((entry) => this.operation(entry)));
  }

  operation({ method, path, op, shared }) {
    // A schema's fields are spelled out once per operation (ErrorBody under 400, not again
    // under 413 and 500): later mentions are the link alone.
    this.expanded = new Set();
    const parameters = [...shared, ...(op.parameters || [])].map((p) => this.resolve(p));
    const secured = (op.security || this.doc.security || []).some((s) => Object.keys(s).length > 0);
    const search = [method, path, op.summary || "", op.operationId || ""].join(" ").toLowerCase();
    return h("details", { class: "panel api-op", id: operationId(method, path), dataset: { method, path, search } },
      h("summary", null,
        h("span", { class: `method ${method}` }, method.toUpperCase()), " ",
        h("code", { class: "api-path" }, path), " ",
        op.summary ? h("span", { class: "api-summary" }, rich(op.summary)) : null,
        op.deprecated ? [" ", badge("deprecated", "pending")] : null,
        secured ? [" ", badge("token", "info")] : null),
      paragraphs(op.description),
      secured ? h("p", { class: "muted" }, "Needs ", h("code", null, "Authorization: Bearer <token>"), " when the server has an API token (", h("code", null, "http.api_token"), ").") : null,
      parameters.length ? [h("h3", null, "Parameters"), this.parameterTable(parameters)] : null,
      op.requestBody ? this.requestBody(this.resolve(op.requestBody)) : null,
      h("h3", null, "Responses"),
      this.responses(op.responses || {}));
  }

  parameterTable(parameters) {
    return h("div", { class: "table-wrap" }, stacked(h("table", { class: "api-fields", "aria-label": "Parameters" },
      h("thead", null, h("tr", null, ["Name", "In", "Type", "Required", "Bounds and description"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, parameters.map((p) => {
        const schema = p.schema || {};
        return h("tr", null,
          h("td", null, h("code", null, p.name)),
          h("td", { class: "api-in" }, p.in),
          h("td", null, this.typeOf(schema)),
          h("td", null, p.required ? "yes" : "no"),
          h("td", null, describe(schema, p.description), this.nested(schema, 1)));
      })))));
  }

  requestBody(body) {
    return [
      h("h3", null, "Request body", body.required ? "" : " (optional)"),
      paragraphs(body.description),
      this.content(body.content || {}),
    ];
  }

  responses(responses) {
    const codes = Object.keys(responses).sort();
    return h("ul", { class: "api-responses" }, codes.map((code) => {
      const response = this.resolve(responses[code]);
      const kind = code.startsWith("2") ? "ok" : code.startsWith("4") ? "pending" : code.startsWith("5") ? "failed" : "info";
      return h("li", { dataset: { status: code } },
        badge(code, kind), " ", rich(response.description || ""),
        this.content(response.content || {}));
    }));
  }

  /** Each media type of a body with its schema. */
  content(content) {
    const entries = Object.entries(content);
    if (!entries.length) return null;
    return entries.map(([type, media]) => h("div", { class: "api-media" },
      h("div", null, h("code", { class: "muted" }, type), media.schema ? [" ", this.typeOf(media.schema)] : null),
      media.schema ? this.schemaBody(media.schema) : null));
  }

  /** A body's schema spelled out: a named schema's fields (one level: deeper names are links). */
  schemaBody(schema) {
    const name = schema.$ref ? refName(schema.$ref) : schema.items && schema.items.$ref ? refName(schema.items.$ref) : null;
    if (name && this.schemas[name]) {
      if (this.expanded.has(name)) return null;
      this.expanded.add(name);
      return this.fields(this.schemas[name], 1);
    }
    return this.nested(schema, 1);
  }

  schemaSection(name) {
    const schema = this.schemas[name];
    return h("details", { class: "panel api-schema", id: schemaId(name), dataset: { search: `schema ${name}`.toLowerCase() } },
      h("summary", null, h("code", null, name), " ", h("span", { class: "muted" }, typeText(schema, this))),
      paragraphs(schema.description),
      this.fields(schema, 1) || h("p", { class: "muted" }, describe(schema) || "No fields."));
  }

  /** An object schema's fields as a table; a variant schema (oneOf/anyOf) as its variants. */
  fields(schema, depth) {
    if (!schema || depth > MAX_DEPTH) return null;
    const variants = schema.oneOf || schema.anyOf;
    if (variants) {
      const real = variants.filter((v) => v.type !== "null");
      if (real.length === 1) return this.fields(real[0].$ref ? this.schemas[refName(real[0].$ref)] : real[0], depth);
      return h("ol", { class: "api-variants" }, real.map((v) => h("li", null, this.typeOf(v), v.$ref ? null : this.fields(v, depth + 1))));
    }
    const { properties, required, includes } = this.flatten(schema);
    if (!Object.keys(properties).length) return null;
    return h("div", { class: "table-wrap" },
      includes.length ? h("p", { class: "muted" }, "With every field of ", joinParts(includes.map((name) => [h("a", { href: `#${schemaId(name)}`, class: "api-ref" }, name)]), ", "), ":") : null,
      stacked(h("table", { class: "api-fields", "aria-label": "Fields" },
      h("thead", null, h("tr", null, ["Field", "Type", "Required", "Bounds and description"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, Object.entries(properties).map(([field, inner]) => h("tr", { dataset: { field } },
        h("td", null, h("code", null, field)),
        h("td", null, this.typeOf(inner)),
        h("td", null, required.has(field) ? "yes" : "no"),
        h("td", null, describe(inner), this.nested(inner, depth + 1))))))));
  }

  /** An object's fields with those of its `allOf` parts (a flattened struct, on the wire one
   * object), and the names of the schemas they came from. */
  flatten(schema, seen = new Set()) {
    const out = { properties: {}, required: new Set(), includes: [] };
    for (const part of schema.allOf || []) {
      const name = part.$ref ? refName(part.$ref) : null;
      if (name && seen.has(name)) continue;
      if (name) {
        seen.add(name);
        out.includes.push(name);
      }
      const inner = this.flatten(name ? this.schemas[name] || {} : part, seen);
      Object.assign(out.properties, inner.properties);
      inner.required.forEach((field) => out.required.add(field));
      out.includes.push(...inner.includes);
    }
    Object.assign(out.properties, schema.properties || {});
    (schema.required || []).forEach((field) => out.required.add(field));
    return out;
  }

  /** The fields of an inline (unnamed) object inside `schema`, if any. */
  nested(schema, depth) {
    if (!schema || schema.$ref) return null;
    if (schema.properties || schema.allOf) return this.fields(schema, depth);
    if (schema.items && !schema.items.$ref) return this.nested(schema.items, depth);
    if (schema.additionalProperties && typeof schema.additionalProperties === "object" && !schema.additionalProperties.$ref) return this.nested(schema.additionalProperties, depth);
    const variants = schema.oneOf || schema.anyOf;
    if (variants) {
      const inline = variants.filter((v) => !v.$ref && v.type !== "null" && v.properties);
      return inline.length ? inline.map((v) => this.fields(v, depth)) : null;
    }
    return null;
  }

  /** A schema's type as nodes: names link to their schema. */
  typeOf(schema) {
    return h("span", { class: "api-type" }, typeParts(schema, this));
  }
}

/** A schema's type as an array of text and links (`array of [Hit]`, `string or null`). */
function typeParts(schema, viewer, depth = 0) {
  if (!schema || typeof schema !== "object") return ["any"];
  if (depth > MAX_DEPTH) return ["…"];
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return name ? [h("a", { href: `#${schemaId(name)}`, class: "api-ref" }, name)] : [String(schema.$ref)];
  }
  const variants = schema.oneOf || schema.anyOf;
  if (variants) return joinParts(variants.map((v) => typeParts(v, viewer, depth + 1)), " or ");
  if (schema.allOf) return ["object"];
  if (schema.const !== undefined) return [JSON.stringify(schema.const)];
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (!types.length) {
    if (schema.properties) return ["object"];
    if (schema.enum) return [schema.enum.map((v) => JSON.stringify(v)).join(" | ")];
    return ["any"];
  }
  return joinParts(types.map((type) => {
    if (type === "array") return ["array of ", ...typeParts(schema.items, viewer, depth + 1)];
    if (type === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object") {
      return ["map of ", ...typeParts(schema.propertyNames || { type: "string" }, viewer, depth + 1), " → ", ...typeParts(schema.additionalProperties, viewer, depth + 1)];
    }
    if (type === "string" && schema.enum) return [schema.enum.filter((v) => v !== null).map((v) => JSON.stringify(v)).join(" | ")];
    return [schema.format && type !== "null" ? `${type} (${schema.format})` : type];
  }), " or ");
}

function joinParts(lists, separator) {
  return lists.flatMap((list, i) => (i ? [separator, ...list] : list));
}

/** A schema's type in plain text (for summaries). */
function typeText(schema, viewer) {
  return typeParts(schema, viewer).map((p) => (typeof p === "string" ? p : p.textContent)).join("");
}

/** Bounds, default, allowed values and description, in words. */
function describe(schema, description) {
  const s = schema || {};
  const bounds = [];
  if (s.minimum !== undefined) bounds.push(`≥ ${s.minimum}`);
  if (typeof s.exclusiveMinimum === "number") bounds.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) bounds.push(`≤ ${s.maximum}`);
  if (typeof s.exclusiveMaximum === "number") bounds.push(`< ${s.exclusiveMaximum}`);
  if (s.minLength !== undefined) bounds.push(`length ≥ ${s.minLength}`);
  if (s.maxLength !== undefined) bounds.push(`length ≤ ${s.maxLength}`);
  if (s.minItems !== undefined) bounds.push(`items ≥ ${s.minItems}`);
  if (s.maxItems !== undefined) bounds.push(`items ≤ ${s.maxItems}`);
  if (s.pattern !== undefined) bounds.push(`matches ${s.pattern}`);
  if (s.enum && s.type !== "string") bounds.push(`one of ${s.enum.map((v) => JSON.stringify(v)).join(", ")}`);
  if (s.default !== undefined) bounds.push(`default ${JSON.stringify(s.default)}`);
  if (s.example !== undefined) bounds.push(`e.g. ${JSON.stringify(s.example)}`);
  if (s.deprecated) bounds.push("deprecated");
  const text = description || s.description;
  if (!bounds.length && !text) return null;
  return h("div", null,
    bounds.length ? h("span", { class: "api-bounds" }, bounds.join(" · ")) : null,
    bounds.length && text ? h("br") : null,
    text ? h("span", null, rich(text)) : null);
}

/** Hides operations and schemas that do not mention `text`; returns how many are shown. */
function applyFilter(page, text) {
  let shown = 0;
  for (const item of page.querySelectorAll(".api-op, .api-schema")) {
    const visible = !text || item.dataset.search.includes(text) || item.textContent.toLowerCase().includes(text);
    item.hidden = !visible;
    if (visible) shown += 1;
  }
  for (const section of page.querySelectorAll(".api-tag")) {
    section.hidden = !section.querySelector(".api-op:not([hidden])");
  }
  return shown;
}
