// Times as the search API takes them: RFC 3339 or relative to now (`now`, `now-15m`).

const UNITS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

export const PRESETS = [
  ["now-15m", "Last 15 minutes"],
  ["now-1h", "Last hour"],
  ["now-24h", "Last 24 hours"],
  ["now-7d", "Last 7 days"],
];

export function isRelative(value) {
  return /^now(\s*-\s*\d+\s*[smhdw])?$/.test(String(value).trim());
}

/** A Date for `now`, `now-15m` or an RFC 3339 time; null if unreadable. */
export function resolve(value, now = Date.now()) {
  const text = String(value || "").trim();
  const relative = /^now(?:\s*-\s*(\d+)\s*([smhdw]))?$/.exec(text);
  if (relative) {
    return new Date(relative[1] ? now - Number(relative[1]) * UNITS[relative[2]] : now);
  }
  const parsed = Date.parse(text);
  return Number.isNaN(parsed) ? null : new Date(parsed);
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** `2026-11-25 12:03:04` in the browser's time zone. */
export function formatTime(value, { millis = false } = {}) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value ?? "");
  const base = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return millis ? `${base}.${pad(date.getMilliseconds(), 3)}` : base;
}

/** A short tick label suited to the span shown. */
export function tickLabel(date, spanMs) {
  if (spanMs <= 2 * 86400e3) return `${pad(date.getHours())}:${pad(date.getMinutes())}${spanMs < 600e3 ? ":" + pad(date.getSeconds()) : ""}`;
  return `${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}h`;
}

/** `12 s ago`, `3 min ago`, `2 h ago`, `4 d ago`. */
export function ago(value, now = Date.now()) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return "never";
  const seconds = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** `1h 5m`, `40s`. */
export function duration(ms) {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const parts = [];
  const d = Math.floor(seconds / 86400), hr = Math.floor((seconds % 86400) / 3600), mn = Math.floor((seconds % 3600) / 60);
  if (d) parts.push(`${d}d`);
  if (hr) parts.push(`${hr}h`);
  if (mn && !d) parts.push(`${mn}m`);
  return parts.join(" ") || `${seconds}s`;
}

/** `1h30m`, `2d`, `45m` into milliseconds; null if unreadable. */
export function parseDuration(text) {
  const parts = String(text || "").trim().match(/^(\d+\s*[smhdw]\s*)+$/);
  if (!parts) return null;
  let total = 0;
  for (const [, n, unit] of String(text).matchAll(/(\d+)\s*([smhdw])/g)) total += Number(n) * UNITS[unit];
  return total || null;
}

/** The value of an `<input type="datetime-local">` for a Date (local time). */
export function toLocalInput(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** An RFC 3339 string in UTC, to seconds. */
export function rfc3339(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}
