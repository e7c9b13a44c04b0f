// The photos waiting on this device, in IndexedDB: they outlive the tab, a reload and a restart of
// the phone (unlike sessionStorage, where the key is). One record per photo, keyed by its
// client_id, so however often it is sent the server scores it once.
//
// A record: {id (its client_id), file (the Blob; dropped once sent), name, size, meta (place,
// inspector, note), position ({lat, lon, accuracy_m, at} or null), queued_at, queued_by, state
// ("waiting" | "sent" | "failed"), tries, last_error ({code, message} of the latest failed try),
// error (why the server refused it, for "failed"), inspection_id, findings, sent_at}.

const DB = "envwatch";
const STORE = "outbox";
const KEEP_SENT = 100;

let opened = null;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function database() {
  if (!opened) {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id" });
    opened = request(req);
  }
  return opened;
}

async function store(mode) {
  return (await database()).transaction(STORE, mode).objectStore(STORE);
}

/** Every record, oldest first. */
export async function entries() {
  const all = await request((await store("readonly")).getAll());
  return all.sort((a, b) => a.queued_at.localeCompare(b.queued_at) || a.id.localeCompare(b.id));
}

/** Write `record` (new or changed). */
export async function save(record) {
  await request((await store("readwrite")).put(record));
}

export async function remove(id) {
  await request((await store("readwrite")).delete(id));
}

/** Forget sent records beyond the newest KEEP_SENT (or all of them), so the history stays short. */
export async function pruneSent(keep = KEEP_SENT) {
  const sent = (await entries()).filter((r) => r.state === "sent").sort((a, b) => b.sent_at.localeCompare(a.sent_at));
  for (const record of sent.slice(keep)) await remove(record.id);
}

/** Ask the browser not to evict the queue under storage pressure (best effort; some never grant it). */
export function keepOnDevice() {
  if (navigator.storage && navigator.storage.persist) navigator.storage.persist().catch(() => {});
}
