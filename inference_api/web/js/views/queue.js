// #/queue: the photos kept on this device: what waits (and why it has not gone yet), what went
// (with a link to its inspection), what the server refused and why. A photo that waits or was
// refused can be deleted here, the only way one leaves the device unsent; sent ones are only
// details by then (the photo itself is dropped once the server has it).

import { announce, h, put } from "../dom.js";
import { formatTime, t } from "../i18n.js";
import { entries, remove } from "../outbox.js";
import { href } from "../router.js";
import { onQueueChange, retryNow, senderState } from "../sender.js";
import { heading, refusalText, sizeText } from "./common.js";

function positionText(position) {
  if (!position) return t("positionNone");
  const where = `${position.lat.toFixed(5)}, ${position.lon.toFixed(5)}`;
  return t("positionDevice", { where, m: Math.round(position.accuracy_m ?? 0) });
}

function stateLine(record, state) {
  if (state === "sending") return h("p", { class: "state" }, t("uploading"));
  if (state === "failed") return h("p", { class: "state reason", role: "note" }, `${t("queueRefused")}: ${refusalText(record.error)}`);
  if (state === "sent") {
    return h(
      "p",
      { class: "state" },
      `${t("queueSentAt", { at: formatTime(record.sent_at) })} · `,
      h("a", { href: href(`/inspections/${record.inspection_id}`) }, t("inspection", { id: record.inspection_id })),
      ` · ${record.findings ? t("fileProblems", { n: record.findings }) : t("fileNoProblems")}`,
    );
  }
  const why = record.last_error ? `${t("queueLastTry", { n: record.tries, why: record.last_error.code === "network" ? t("unreachable") : record.last_error.message })}` : "";
  return h("p", { class: "state" }, `${t("waitingForServer")}${why}`);
}

/** Delete (or, once sent, forget) one record, asking first when that loses a photo not yet sent. */
function deleteControls(record, state, onDeleted) {
  const box = h("div", { class: "actions" });
  const gone = async () => {
    await remove(record.id);
    announce(t("queueDeleted", { name: record.name }));
    onDeleted();
  };
  const ask = () => {
    const yes = h("button", { type: "button", class: "danger", onclick: gone }, t("queueDeleteYes"));
    put(box, h("span", { class: "confirm" }, t("queueDeleteConfirm")), yes, h("button", { type: "button", onclick: () => { put(box, first()); box.querySelector("button").focus(); } }, t("labelDeleteNo")));
    yes.focus();
  };
  const first = () => (state === "sent"
    ? h("button", { type: "button", class: "delete", onclick: gone }, t("queueForget"))
    : h("button", { type: "button", class: "delete", disabled: state === "sending", onclick: ask }, t("queueDelete")));
  put(box, first());
  return box;
}

function item(record, thumbs, onDeleted) {
  const state = senderState().sending === record.id ? "sending" : record.state;
  let thumb = null;
  if (record.file) {
    const url = URL.createObjectURL(record.file);
    thumbs.push(url);
    thumb = h("img", { class: "thumb", src: url, alt: "", onerror: (event) => event.target.replaceWith(h("span", { class: "thumb" })) });
  }
  const place = [record.meta.region, record.meta.township, record.meta.village].filter(Boolean).join(" · ");
  return h(
    "li",
    { class: `queue-item q-${state}`, dataset: { id: record.id, state, name: record.name } },
    thumb,
    h(
      "div",
      { class: "queue-body" },
      h("h2", {}, record.name, " ", h("span", { class: `badge q-${state}` }, t(`queue_${state}`))),
      h("p", { class: "muted" }, [sizeText(record.size), place, record.meta.inspector, `${t("queuedAt")} ${formatTime(record.queued_at)}`, record.queued_by].filter(Boolean).join(" · ")),
      h("p", { class: "position", dataset: { source: record.position ? "device" : "none" } }, positionText(record.position)),
      state === "sending" ? h("progress", { max: 100, "aria-label": record.name }) : null,
      stateLine(record, state),
      deleteControls(record, state, onDeleted),
    ),
  );
}

function connection(counts) {
  if (!navigator.onLine) return t("queueOffline");
  const { sending, nextTry } = senderState();
  if (sending) return t("queueSending");
  if (counts.waiting && nextTry) return t("queueNextTry", { s: Math.max(1, Math.round((nextTry - Date.now()) / 1000)) });
  return counts.waiting ? "" : t("queueAllSent");
}

export function queueView(main) {
  const summary = h("p", { class: "count", id: "queue-summary" });
  const status = h("p", { class: "muted", id: "queue-connection", "aria-live": "polite" });
  const list = h("ul", { class: "queue-list" });
  const section = h("section", { id: "queue" }, summary, status, list);
  let thumbs = [];
  let pending = null;

  async function refresh() {
    const records = await entries();
    thumbs.forEach((url) => URL.revokeObjectURL(url));
    thumbs = [];
    const counts = { waiting: 0, sent: 0, failed: 0 };
    records.forEach((r) => { counts[r.state] += 1; });
    Object.assign(section.dataset, counts);
    summary.textContent = t("queueCounts", { w: counts.waiting, s: counts.sent, f: counts.failed });
    status.textContent = connection(counts);
    const focusGone = () => { main.querySelector("h1").focus(); refreshSoon(); };
    // Waiting and refused photos first (they need the inspector), newest sent last.
    const order = { failed: 0, waiting: 1, sent: 2 };
    const sorted = [...records].sort((a, b) => order[a.state] - order[b.state]);
    put(list, sorted.length ? sorted.map((r) => item(r, thumbs, focusGone)) : h("li", { class: "muted" }, t("queueEmpty")));
  }

  function refreshSoon() {
    if (!pending) pending = window.setTimeout(() => { pending = null; refresh(); }, 50);
  }

  const sendNow = h("button", { type: "button", id: "queue-send", onclick: () => { retryNow(); refreshSoon(); } }, t("queueSendNow"));
  const clearSent = h("button", {
    type: "button",
    id: "queue-clear-sent",
    onclick: async () => {
      for (const r of await entries()) if (r.state === "sent") await remove(r.id);
      refresh();
    },
  }, t("queueClearSent"));
  put(main, heading(t("queueTitle")), h("p", { class: "muted" }, t("queueHelp")), h("div", { class: "actions" }, sendNow, clearSent), section);
  refresh();

  const unsubscribe = onQueueChange((detail) => {
    const bar = detail.state === "sending" && detail.fraction ? list.querySelector(`li[data-id="${detail.id}"] progress`) : null;
    if (bar) bar.value = Math.round(detail.fraction * 100);
    else refreshSoon();
  });
  const ticker = window.setInterval(() => { status.textContent = connection({ waiting: Number(section.dataset.waiting) }); }, 1000);
  const onLine = () => refreshSoon();
  window.addEventListener("online", onLine);
  window.addEventListener("offline", onLine);
  return () => {
    unsubscribe();
    window.clearInterval(ticker);
    window.removeEventListener("online", onLine);
    window.removeEventListener("offline", onLine);
    window.clearTimeout(pending);
    thumbs.forEach((url) => URL.revokeObjectURL(url));
  };
}
