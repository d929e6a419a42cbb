// The UI's entry point: path routing between pages, the theme toggle, and global keys.

import * as search from "./search.js";
import * as regions from "./regions.js";
import * as alerts from "./alerts.js";
import * as health from "./health.js";
import * as apidocs from "./apidocs.js";
import * as overview from "./overview.js";
import * as alert from "./alert.js";
import * as daily from "./daily.js";

const meta = (name) => Number(document.querySelector(`meta[name="${name}"]`).content);
const ctx = {
  liveSeconds: Math.max(1, meta("windsock-live-interval") || 5),
  // indexer.max_result_window: the deepest hit a search pages to with `offset`.
  resultWindow: Math.max(1, meta("windsock-result-window") || 10000),
};
const main = document.getElementById("main");
const baseTitle = document.title;

let current = { page: null, path: null, instance: null };

/** The page module for a path, and its title. */
function route(pathname) {
  if (pathname === "/") return { name: "overview", module: overview, title: "Overview" };
  if (pathname === "/search") return { name: "search", module: search, title: "Search" };
  if (pathname === "/regions" || pathname === "/regions/") return { name: "regions", module: regions, title: "Regions" };
  if (pathname.startsWith("/regions/")) return { name: "regions", module: regions, title: regions.regionFromPath(pathname) };
  if (pathname === "/alerts" || pathname === "/alerts/") return { name: "alerts", module: alerts, title: "Alerts" };
  if (pathname.startsWith("/alerts/")) return { name: "alerts", module: alert, title: `Alert ${alert.idFromPath(pathname)}` };
  if (pathname === "/health") return { name: "health", module: health, title: "Health" };
  if (pathname === "/daily") return { name: "daily", module: daily, title: "Daily" };
  // Exactly `/api`: everything under `/api/` is the APIs themselves.
  if (pathname === "/api") return { name: "api", module: apidocs, title: "API" };
  return null;
}

/**
 * Links sent before the overview became the landing page (the alerter's Slack messages say
 * `/?q=...&from=...&to=...`) open the search they name: the URL is rewritten in place, so
 * Back does not bounce through it.
 */
function redirectOldSearchLinks() {
  if (location.pathname !== "/" || !location.search) return;
  const params = new URLSearchParams(location.search);
  if (!params.has("q")) return;
  history.replaceState(null, "", `/search${location.search}${location.hash}`);
}

function show() {
  redirectOldSearchLinks();
  const target = route(location.pathname);
  // Back/forward within the same page keeps it (the search page re-reads its URL).
  if (target && current.path === location.pathname && current.instance && current.instance.update) {
    current.instance.update();
    return;
  }
  if (current.instance && current.instance.stop) current.instance.stop();
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (target && link.dataset.page === target.name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!target) {
    main.replaceChildren(notFound());
    current = { page: null, path: location.pathname, instance: null };
    document.title = `Not found · ${baseTitle}`;
    return;
  }
  document.title = `${target.title} · ${baseTitle}`;
  current = { page: target.name, path: location.pathname, instance: target.module.render(main, ctx, navigate) };
}

function notFound() {
  const p = document.createElement("p");
  p.className = "notice";
  p.textContent = `There is no page at ${location.pathname}. `;
  const link = document.createElement("a");
  link.href = "/";
  link.dataset.nav = "";
  link.textContent = "Go to the overview";
  p.append(link);
  return p;
}

/** Goes to an in-app URL without reloading. */
export function navigate(url) {
  history.pushState(null, "", url);
  show();
  main.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-nav]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  // An SVG link (the map's points) has its href as an SVGAnimatedString.
  const url = new URL(link.getAttribute("href"), location.href);
  if (url.origin !== location.origin) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", show);

// `/` focuses the search box (going to the search page first when elsewhere).
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
  event.preventDefault();
  if (current.page !== "search") navigate("/search");
  const box = document.getElementById("q");
  if (box) { box.focus(); box.select(); }
});

// Theme: automatic (the system's), light or dark; the choice is remembered.
const THEMES = ["auto", "light", "dark"];
const themeButton = document.getElementById("theme-toggle");
function applyTheme(theme) {
  if (theme === "auto") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.setAttribute("data-theme", theme);
  themeButton.setAttribute("aria-label", `Colour theme: ${theme === "auto" ? "automatic" : theme}. Change theme`);
  themeButton.title = `Theme: ${theme}`;
  themeButton.textContent = theme === "auto" ? "◐" : theme === "light" ? "☀" : "☾";
}
let theme = localStorage.getItem("windsock.theme") || "auto";
if (!THEMES.includes(theme)) theme = "auto";
applyTheme(theme);
themeButton.addEventListener("click", () => {
  theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
  localStorage.setItem("windsock.theme", theme);
  applyTheme(theme);
});

// A script error should not leave a silently half-drawn page: say so, with the reason.
function reportError(message) {
  let notice = document.getElementById("page-error");
  if (!notice) {
    notice = document.createElement("p");
    notice.id = "page-error";
    notice.className = "notice error";
    notice.setAttribute("role", "alert");
    document.body.insertBefore(notice, main);
  }
  notice.textContent = `Part of this page failed to draw: ${message}. Reloading may help; if not, please report it.`;
}
window.addEventListener("error", (event) => reportError(event.message || "script error"));
window.addEventListener("unhandledrejection", (event) => {
  const reason = event.reason;
  if (reason && reason.name === "AbortError") return;
  reportError(reason && reason.message ? reason.message : String(reason));
});

show();
