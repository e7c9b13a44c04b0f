// The service worker that lets the inspectors' page open with no signal: it keeps the app shell
// (the page and every file under /web/, listed by the server at /web/shell.json so a new module
// can never be forgotten here) in a cache and serves it when the server cannot be reached.
//
// Network first, cache as the fallback (or after NETWORK_WAIT_MS of a signal too weak to answer):
// when the server answers, the page is always the one it serves now, so an upgrade shows at once.
// The API (/v1/...) is never touched: its answers need the key and must never be stale; photos
// waiting for the server are the page's outbox (js/outbox.js, IndexedDB), not this cache.

const CACHE = "envwatch-shell-v1";
const NETWORK_WAIT_MS = 4000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const files = await (await fetch("/web/shell.json", { cache: "no-cache" })).json();
      await (await caches.open(CACHE)).addAll(files);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
      await self.clients.claim();
    })(),
  );
});

function isShell(url) {
  return url.origin === self.location.origin && (url.pathname === "/" || url.pathname.startsWith("/web/"));
}

async function shell(request, path) {
  const cache = await caches.open(CACHE);
  const network = fetch(request).then(async (response) => {
    if (response.ok) await cache.put(path, response.clone());
    return response;
  });
  const cached = await cache.match(path);
  if (!cached) return network;
  const slow = new Promise((resolve) => setTimeout(() => resolve(cached), NETWORK_WAIT_MS));
  return Promise.race([network.catch(() => cached), slow]);
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || !isShell(url)) return;
  event.respondWith(shell(event.request, url.pathname));
});
