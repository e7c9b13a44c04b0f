// The /v1 API as the signed-in key sees it. Every call sends the key; a 401 anywhere signs the
// tab out (the key was revoked) and every error arrives as ApiError with the server's code.

import { apiKey, signOut } from "./session.js";

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
    this.files = error.files || null;
    this.retryAfter = retryAfter;
  }
}

const listeners = new Set();

/** `callback()` runs when the server says the key is no longer valid. */
export function onUnauthenticated(callback) {
  listeners.add(callback);
}

function failed(status, body, retryAfter, signedInKey = true) {
  if (status === 401 && signedInKey) {
    signOut();
    listeners.forEach((callback) => callback());
  }
  return new ApiError(status, body, retryAfter);
}

/** The server could not be reached (offline, or it is down): status 0, code "network". */
function unreachable() {
  return new ApiError(0, { error: { code: "network", message: "network error" } });
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

async function parse(response) {
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : null;
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== "") q.set(name, value);
  const text = q.toString();
  return text ? `?${text}` : "";
}

/**
 * GET (or another method with `json` or `form` as the body) and return the parsed JSON. `key`
 * tries a key that is not signed in yet (the sign-in form): its 401 signs nobody out.
 */
export async function api(path, { method = "GET", json, form, key } = {}) {
  const init = { method, headers: headers(json ? { "Content-Type": "application/json" } : {}) };
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (json) init.body = JSON.stringify(json);
  if (form) init.body = form;
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw unreachable();
  }
  const body = await parse(response);
  if (!response.ok) throw failed(response.status, body, Number(response.headers.get("retry-after")) || null, !key);
  return body;
}

/**
 * POST a multipart form with upload progress (fetch cannot report it): `onProgress(loadedBytes)`
 * while the body goes out, `onSent()` once it is all out and the server is working.
 */
export function upload(path, form, { onProgress = () => {}, onSent = () => {} } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
    xhr.upload.addEventListener("load", () => onSent());
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(failed(xhr.status, xhr.response, Number(xhr.getResponseHeader("retry-after")) || null));
    });
    xhr.addEventListener("error", () => reject(unreachable()));
    xhr.send(form);
  });
}

const blobs = new Map();

/** An object URL for a stored image (images need the key, so a plain <img src> cannot fetch them). */
export async function imageUrl(path) {
  if (!blobs.has(path)) {
    const response = await fetch(path, { headers: headers() });
    if (!response.ok) throw failed(response.status, await parse(response), null);
    blobs.set(path, URL.createObjectURL(await response.blob()));
  }
  return blobs.get(path);
}

/** Fetch a file with the key and hand it to the browser as a download named `filename`. */
export async function download(path, filename) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw failed(response.status, await parse(response), null);
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Forget cached images (on sign-out, so another key never sees them). */
export function forgetImages() {
  blobs.forEach((url) => URL.revokeObjectURL(url));
  blobs.clear();
}
