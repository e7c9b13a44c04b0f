// Hash routes (#/findings/12?status=confirmed): the page works from a plain static file, the
// back button and bookmarks work, and every view's state (filters, sort, page) is in its link.

const routes = [];
let cleanup = null;
let latest = 0;

/** Register `view(main, {params, query})` for paths matching `pattern` (a RegExp with groups). */
export function route(pattern, view) {
  routes.push({ pattern, view });
}

export function current() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(search)) };
}

/** The link to `path` with `query` (empty values left out). */
export function href(path, query = {}) {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const text = q.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

export function go(path, query = {}) {
  location.hash = href(path, query);
}

/**
 * Render the view for the current hash into `main`; returns false when no route matches.
 *
 * Each render gets a container of its own: a view still waiting for the API when the link
 * changes (a slow ledger, then a click elsewhere) finishes into its detached container, so it
 * can never overwrite the newer view, and whatever it set up is cleaned up at once.
 */
export async function render(main) {
  if (cleanup) cleanup();
  cleanup = null;
  const { path, query } = current();
  const mine = ++latest;
  for (const { pattern, view } of routes) {
    const match = path.match(pattern);
    if (match) {
      const container = document.createElement("div");
      container.className = "view";
      main.replaceChildren(container);
      const result = await view(container, { params: match.slice(1), query });
      const done = typeof result === "function" ? result : null;
      if (mine === latest) cleanup = done;
      else if (done) done();
      return true;
    }
  }
  return false;
}
