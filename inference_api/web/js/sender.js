// Sends the photos waiting in the outbox, oldest first, one request (one inspection) each, by
// itself: at once, when the browser comes back online, when the page is shown again, and on a
// timer (5 s doubling to 60 s) while the server cannot be reached, since "online" only means a
// network, not this server.
//
// Each photo goes alone with its own client_id: resent after a lost answer, a closed tab or a
// second tab sending too, the server replays the first inspection instead of scoring it again,
// and a photo the server refuses never holds up or changes another's request. What the server
// refuses (not an image, too large: 413/422 and other 4xx) is marked failed with its reason and
// kept until the inspector deletes it; a revoked key (401) signs the tab out (api.js) and the
// photos keep waiting for the next key; anything else (no network, 5xx, busy) is tried again.

import { upload } from "./api.js";
import { entries, keepOnDevice, pruneSent, save } from "./outbox.js";
import { apiKey, canWrite, me } from "./session.js";

const RETRY_MIN_S = 5;
const RETRY_MAX_S = 60;
const META = ["inspector", "region", "township", "village", "note"];

const changes = new EventTarget();
let running = null;
let again = false;
let timer = null;
let delay = RETRY_MIN_S;
let nextTry = null;
let sending = null;

/** `callback(detail)` on every change: {id, state, fraction?, inspection?}; returns the unsubscribe. */
export function onQueueChange(callback) {
  const listener = (event) => callback(event.detail);
  changes.addEventListener("change", listener);
  return () => changes.removeEventListener("change", listener);
}

function emit(detail) {
  changes.dispatchEvent(new CustomEvent("change", { detail }));
}

/** What the sender is doing: {sending (the id in flight or null), nextTry (ms timestamp or null)}. */
export function senderState() {
  return { sending, nextTry };
}

function clientId() {
  // crypto.randomUUID needs a secure context; a laptop on http://<lan address> is not one.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Keep `file` on this device with its details and position, then try to send it; the new record. */
export async function enqueue(file, meta, position) {
  const record = {
    id: clientId(),
    file,
    name: file.name || "photo.jpg",
    size: file.size,
    meta: Object.fromEntries(META.map((k) => [k, meta[k] || ""])),
    position,
    queued_at: new Date().toISOString(),
    queued_by: (me() || {}).name || "",
    state: "waiting",
    tries: 0,
    last_error: null,
    error: null,
  };
  await save(record);
  keepOnDevice();
  emit({ id: record.id, state: "waiting" });
  return record;
}

function form(record) {
  const body = new FormData();
  body.append("files", record.file, record.name);
  for (const [name, value] of Object.entries(record.meta)) if (value) body.append(name, value);
  body.append("client_id", record.id);
  if (record.position) {
    body.append("device_lat", record.position.lat);
    body.append("device_lon", record.position.lon);
    if (record.position.accuracy_m !== null && record.position.accuracy_m !== undefined) body.append("device_accuracy_m", record.position.accuracy_m);
  }
  return body;
}

/** Whether the server's answer refuses this photo for good (resending it would be refused again). */
function refused(error) {
  return error.status >= 400 && error.status < 500 && ![401, 403, 408, 429].includes(error.status);
}

/** Send one record; true to go on with the next, false to stop until the next try. */
async function send(record) {
  sending = record.id;
  emit({ id: record.id, state: "sending", fraction: 0 });
  try {
    const inspection = await upload("/v1/inspections", form(record), {
      onProgress: (loaded) => emit({ id: record.id, state: "sending", fraction: Math.min(1, loaded / (record.size || 1)) }),
      onSent: () => emit({ id: record.id, state: "scoring" }),
    });
    const sent = { ...record, file: null, state: "sent", inspection_id: inspection.id, findings: inspection.findings.length, sent_at: new Date().toISOString() };
    await save(sent);
    emit({ id: record.id, state: "sent", inspection });
    return true;
  } catch (error) {
    const reason = { code: error.code, message: error.message, files: error.files };
    if (refused(error)) {
      await save({ ...record, state: "failed", error: reason, tries: record.tries + 1 });
      emit({ id: record.id, state: "failed", error: reason });
      return true;
    }
    await save({ ...record, tries: record.tries + 1, last_error: reason });
    if (error.code === "overloaded" && error.retryAfter) delay = Math.max(delay, error.retryAfter);
    emit({ id: record.id, state: "waiting" });
    return false;
  } finally {
    sending = null;
  }
}

async function drain() {
  for (;;) {
    if (!apiKey() || !canWrite() || !navigator.onLine) return false;
    // Read afresh each time: photos are kept, deleted or sent (by another tab) meanwhile.
    const next = (await entries()).find((r) => r.state === "waiting");
    if (!next) return true;
    if (!(await send(next))) return false;
  }
}

function schedule(done) {
  window.clearTimeout(timer);
  nextTry = null;
  if (done) {
    delay = RETRY_MIN_S;
    return;
  }
  if (!apiKey() || !navigator.onLine) return; // sign-in and the "online" event start it again
  nextTry = Date.now() + delay * 1000;
  timer = window.setTimeout(kick, delay * 1000);
  delay = Math.min(RETRY_MAX_S, delay * 2);
}

/**
 * Send what waits, unless a send is already running. One tab sends at a time where the browser
 * has Web Locks (secure contexts); elsewhere two tabs may both send, and client_id keeps that harmless.
 */
export function kick() {
  if (running) {
    again = true; // a photo queued while the last pass was finishing is not left waiting
    return running;
  }
  again = false;
  const work = async () => {
    const done = await drain();
    await pruneSent();
    return done;
  };
  const locked = navigator.locks ? navigator.locks.request("envwatch-outbox", work) : work();
  running = locked
    .then(schedule, (error) => {
      console.warn("sending the kept photos failed:", error);
      schedule(false);
    })
    .finally(() => {
      running = null;
      emit({ id: null, state: "idle" });
      if (again) kick();
    });
  return running;
}

/** Try again now, however long the back-off had grown. */
export function retryNow() {
  delay = RETRY_MIN_S;
  return kick();
}

window.addEventListener("online", retryNow);
window.addEventListener("offline", () => schedule(false));
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") kick();
});
