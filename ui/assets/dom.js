// Building DOM without markup strings: every piece of data becomes a text node or an
// attribute value, so an event whose message is `<img src=x onerror=...>` shows as text.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (key === "text") {
      element.textContent = String(value);
    } else {
      element.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h("td", {class: "msg"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replaces the children of `element`. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** Reads out `text` to screen readers. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (region) region.textContent = text;
}

/** A message saying part of the page could not be loaded, with the reason. */
export function unavailable(what, error) {
  return h("p", { class: "unavailable", role: "status" }, `${what} unavailable`, error ? `: ${error.message || error}` : "");
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || text}` }, text);
}

/** A definition list of [term, value] pairs. */
export function keyValues(pairs) {
  return h("dl", { class: "kv" }, pairs.map(([k, v]) => [h("dt", null, k), h("dd", null, v ?? "–")]));
}

/**
 * Marks `table` to turn into stacked cards on a phone: each cell gets its column's header as
 * `data-label` (shown before it by the stylesheet, since the header row is hidden there).
 * For tables without `colspan`; returns the table.
 */
export function stacked(table) {
  table.classList.add("stack");
  const headers = [...table.querySelectorAll(":scope > thead > tr:first-child > th")].map((th) => th.textContent.trim());
  for (const row of table.querySelectorAll(":scope > tbody > tr")) {
    [...row.children].forEach((cell, i) => {
      if (headers[i]) cell.dataset.label = headers[i];
    });
  }
  return table;
}
