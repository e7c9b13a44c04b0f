// Boot: language, the header (navigation by role, language switch, who is signed in), the
// routes, the service worker that keeps the page working offline (sw.js), and the sender of the
// photos waiting on this device. Views live in views/, one file per screen.

import { api, forgetImages, onUnauthenticated } from "./api.js";
import { paintTypes } from "./colours.js";
import { h, put } from "./dom.js";
import { lang, setLang, setTaxonomy, t } from "./i18n.js";
import { entries } from "./outbox.js";
import { current, go, render, route } from "./router.js";
import { kick, onQueueChange } from "./sender.js";
import { apiKey, canWrite, me, signOut } from "./session.js";
import { bulletinView } from "./views/bulletin.js";
import { findingView } from "./views/finding.js";
import { imageView } from "./views/image.js";
import { inspectionView } from "./views/inspection.js";
import { jobsView } from "./views/jobs.js";
import { labelsView } from "./views/labels.js";
import { ledgerView } from "./views/ledger.js";
import { mapView } from "./views/map.js";
import { queueView } from "./views/queue.js";
import { signInView } from "./views/signin.js";
import { summaryView } from "./views/summary.js";
import { uploadView } from "./views/upload.js";

const main = document.getElementById("main");

function home() {
  return canWrite() ? "/upload" : "/findings";
}

function navigation() {
  const { path } = current();
  const links = [
    ["/upload", "navUpload", canWrite()],
    ["/findings", "navLedger", true],
    ["/map", "navMap", true],
    ["/summary", "navSummary", true],
    ["/bulletin", "navBulletin", true],
    ["/labels", "navLabels", true],
    ["/jobs", "navJobs", true],
    ["/queue", "navQueue", canWrite()],
  ];
  const nav = document.getElementById("nav");
  nav.setAttribute("aria-label", t("navLabel"));
  const text = (target, key) => (target === "/queue" ? [t(key), " ", h("span", { class: "count-badge", id: "queue-count", hidden: true })] : t(key));
  put(nav, apiKey() ? h("ul", {}, links.filter(([, , shown]) => shown).map(([target, key]) => h("li", {}, h("a", { href: `#${target}`, "aria-current": path === target || path.startsWith(`${target}/`) ? "page" : null }, text(target, key))))) : null);
  showQueueCount();
}

/** How many photos on this device still need the inspector or the server (waiting or refused), beside "Queue". */
async function showQueueCount() {
  const badge = document.getElementById("queue-count");
  if (!badge) return;
  const n = (await entries()).filter((r) => r.state !== "sent").length;
  badge.textContent = String(n);
  badge.hidden = !n;
}

function tools() {
  const who = me();
  const other = lang() === "en" ? "zh-CN" : "en";
  const toggle = h("button", { type: "button", id: "lang-toggle", lang: other, "aria-label": t("switchLabel"), onclick: () => switchLanguage(other) }, t("switchTo"));
  put(
    document.getElementById("tools"),
    toggle,
    who ? h("span", { class: "who", id: "who", dataset: { role: who.role } }, `${who.name} · ${t(`role${who.role[0].toUpperCase()}${who.role.slice(1)}`)}`) : null,
    who ? h("button", { type: "button", id: "sign-out", onclick: leave }, t("signOut")) : null,
  );
}

function chrome() {
  document.documentElement.lang = lang();
  document.getElementById("brand").textContent = t("app");
  document.getElementById("skip-link").textContent = t("skip");
  navigation();
  tools();
}

async function switchLanguage(code) {
  setLang(code);
  const rendered = show(false); // redraws the header at once (the switch included), then the view
  document.getElementById("lang-toggle").focus();
  await rendered;
}

function leave() {
  signOut();
  forgetImages();
  go("/signin");
}

const TAXONOMY = "envwatch.taxonomy";

/** The problem types from the server, or (offline, model not loaded) the last ones it served. */
async function loadTaxonomy() {
  let types;
  try {
    types = (await api("/v1/model")).problem_types;
    localStorage.setItem(TAXONOMY, JSON.stringify(types));
  } catch {
    types = JSON.parse(localStorage.getItem(TAXONOMY) || "[]"); // none yet: type keys are shown as they are
  }
  setTaxonomy(types);
  paintTypes(types);
}

async function signedIn(next) {
  await loadTaxonomy();
  go(next && next !== "/signin" ? next : home());
  kick();
}

/** Render the current route; `moveFocus` after navigation, so keyboard users land on the new heading. */
async function show(moveFocus) {
  const { path } = current();
  if (!apiKey() && path !== "/signin") {
    go("/signin", { next: path === "/" ? "" : path });
    return;
  }
  chrome();
  if (path === "/signin") {
    signInView(main, current(), signedIn);
    return;
  }
  if (path === "/") {
    go(home());
    return;
  }
  if (!(await render(main))) put(main, h("h1", { tabindex: "-1" }, t("notFound")));
  const heading = main.querySelector("h1");
  if (moveFocus && heading && !main.contains(document.activeElement)) heading.focus();
}

route(/^\/upload$/, uploadView);
route(/^\/inspections\/(\d+)$/, inspectionView);
route(/^\/findings$/, ledgerView);
route(/^\/findings\/(\d+)$/, findingView);
route(/^\/map$/, mapView);
route(/^\/summary$/, summaryView);
route(/^\/bulletin$/, bulletinView);
route(/^\/jobs$/, jobsView);
route(/^\/labels$/, labelsView);
route(/^\/photos\/(\d+)$/, imageView);
route(/^\/queue$/, queueView);

onUnauthenticated(() => {
  forgetImages();
  go("/signin", { expired: 1, next: current().path });
});
onQueueChange(({ state }) => {
  if (state !== "sending" && state !== "scoring") showQueueCount();
});
window.addEventListener("hashchange", () => show(true));
if ("serviceWorker" in navigator) {
  // Absent on an http:// page at a LAN address (not a secure context): the page then needs the server to load.
  navigator.serviceWorker.register("/sw.js").catch((error) => console.warn("offline page unavailable:", error));
}
setLang(lang());
if (apiKey()) await loadTaxonomy();
show(false);
kick();
