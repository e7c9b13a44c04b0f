// Sign-in with an API key: kept in sessionStorage (this tab only, gone when it closes), sent as
// a header by api.js. The role decides which controls are drawn; the server checks it again on
// every request, so hiding a control is a courtesy, never the protection.

const KEY = "envwatch.key";
const ME = "envwatch.me";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

/** {name, role} of the signed-in key, or null. */
export function me() {
  const raw = sessionStorage.getItem(ME);
  return raw ? JSON.parse(raw) : null;
}

export function signIn(key, who) {
  sessionStorage.setItem(KEY, key);
  sessionStorage.setItem(ME, JSON.stringify(who));
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ME);
}

/** Inspectors and admins upload and review; integration keys only read. */
export function canWrite() {
  const who = me();
  return Boolean(who) && (who.role === "admin" || who.role === "inspector");
}

/** Admins manage models: learn new types, promote and roll back versions. */
export function isAdmin() {
  const who = me();
  return Boolean(who) && who.role === "admin";
}
