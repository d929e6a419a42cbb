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

/**
 * A time relative to now: `12 s ago`, `3 min ago`, `2 h ago`, `4 d ago` for the past, and
 * `in 40 s`, `in 3 min` for the future (a next round, a silence's end), never "0 s ago" for a
 * time still to come; `now` within half a second either way.
 */
export function ago(value, now = Date.now()) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return "never";
  const ms = now - date.getTime();
  // Under half a second either way is now: clocks of browser and server differ that much.
  const future = ms < -500;
  const seconds = Math.round(Math.abs(ms) / 1000);
  if (seconds === 0) return "now";
  let amount;
  if (seconds < 60) amount = `${seconds} s`;
  else if (seconds < 3600) amount = `${Math.round(seconds / 60)} min`;
  else if (seconds < 86400) amount = `${Math.round(seconds / 3600)} h`;
  else amount = `${Math.round(seconds / 86400)} d`;
  return future ? `in ${amount}` : `${amount} ago`;
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

/**
 * The text of an absolute-time box for a Date: `2026-11-25 14:03:04` in local time, 24-hour
 * (an `<input type="datetime-local">` shows the browser locale's 12-hour clock, AM/PM, beside
 * the 24-hour times everywhere else on the page).
 */
export function toLocalInput(date) {
  return formatTime(date);
}

/**
 * A Date for what was typed in an absolute-time box: `2026-11-25 14:03`, with optional
 * seconds, a `T` or a space between date and time, in local time; RFC 3339 with a zone is
 * taken as it is. Null if unreadable.
 */
export function parseLocalInput(text) {
  const value = String(text || "").trim();
  const local = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?$/.exec(value);
  if (local) {
    const [, y, mo, d, hr = "0", mi = "0", se = "0", ms = "0"] = local;
    const date = new Date(Number(y), Number(mo) - 1, Number(d), Number(hr), Number(mi), Number(se), Number(ms.padEnd(3, "0")));
    // `2026-02-31` rolls over into March: refuse it rather than search another day.
    const same = date.getFullYear() === Number(y) && date.getMonth() === Number(mo) - 1 && date.getDate() === Number(d)
      && date.getHours() === Number(hr) && date.getMinutes() === Number(mi);
    return same ? date : null;
  }
  if (/[zZ]|[+-]\d{2}:\d{2}$/.test(value)) {
    const parsed = Date.parse(value);
    return Number.isNaN(parsed) ? null : new Date(parsed);
  }
  return null;
}

/** An RFC 3339 string in UTC, to seconds. */
export function rfc3339(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}
