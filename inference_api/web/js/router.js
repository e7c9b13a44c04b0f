// Hash routes (#/findings/12?status=confirmed): the page works from a plain static file, the
// back button and bookmarks work, and every view's state (filters, sort, page) is in its link.

const routes = [];
let cleanup = null;

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

/** Render the view for the current hash into `main`; returns false when no route matches. */
export async function render(main) {
  if (cleanup) cleanup();
  cleanup = null;
  const { path, query } = current();
  for (const { pattern, view } of routes) {
    const match = path.match(pattern);
    if (match) {
      const result = await view(main, { params: match.slice(1), query });
      cleanup = typeof result === "function" ? result : null;
      return true;
    }
  }
  return false;
}
