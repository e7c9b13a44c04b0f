// #/jobs: start a batch job from a zip of drone photos and watch it: a progress bar per job,
// polled from GET /v1/jobs/{id} until it is done or cancelled, then a link to its results
// (the job's photos form one inspection).

import { api, upload } from "../api.js";
import { announce, h, put } from "../dom.js";
import { formatTime, t } from "../i18n.js";
import { href } from "../router.js";
import { canWrite } from "../session.js";
import { errorBox, field, heading, loading, select } from "./common.js";

const POLL_MS = 1000;
const ACTIVE = new Set(["queued", "running"]);

/** A job's card, updated in place on each poll so keyboard focus inside it survives the refresh. */
function jobCard(job, onCancel) {
  const bar = h("progress", { max: 1, value: 0 });
  const badge = h("span", { class: "badge" });
  const text = h("p", { class: "job-progress" });
  const actions = h("div", { class: "actions" });
  const el = h("li", { class: "card job", dataset: { jobId: job.id } }, h("h3", {}, `#${job.id} ${job.source} `, badge), bar, text, actions);
  let shownActions = null;
  const update = (j) => {
    const progress = t("jobProgress", { p: j.processed, n: j.total, f: j.failed });
    el.dataset.status = j.status;
    bar.max = Math.max(j.total, 1);
    bar.value = j.processed;
    bar.setAttribute("aria-label", `#${j.id} ${progress}`);
    badge.textContent = t(`jobStatus_${j.status}`);
    text.textContent = `${progress} · ${formatTime(j.created_at)}`;
    const wanted = `${j.processed > 0}:${ACTIVE.has(j.status) && canWrite()}`;
    if (wanted !== shownActions) {
      shownActions = wanted;
      put(
        actions,
        j.processed ? h("a", { href: href(`/inspections/${j.inspection_id}`), class: "button" }, t("jobResults")) : null,
        ACTIVE.has(j.status) && canWrite() ? h("button", { type: "button", onclick: () => onCancel(j.id) }, t("jobCancel")) : null,
      );
    }
  };
  update(job);
  return { el, update };
}

export function jobsView(main) {
  let timer = null;
  let stopped = false;
  const list = h("ul", { class: "jobs" }, loading());
  const message = h("div");
  const cards = new Map();

  const refresh = async () => {
    window.clearTimeout(timer);
    try {
      const jobs = await api("/v1/jobs?limit=20");
      if (stopped) return;
      if (!cards.size) put(list, jobs.length ? null : h("li", { class: "muted" }, t("jobsNone")));
      for (const job of [...jobs].reverse()) {
        if (cards.has(job.id)) cards.get(job.id).update(job);
        else {
          cards.set(job.id, jobCard(job, cancel));
          list.prepend(cards.get(job.id).el);
        }
      }
      if (jobs.some((job) => ACTIVE.has(job.status))) timer = window.setTimeout(refresh, POLL_MS);
    } catch (error) {
      put(message, errorBox(error));
    }
  };
  const cancel = async (id) => {
    try {
      await api(`/v1/jobs/${id}/cancel`, { method: "POST" });
    } catch (error) {
      put(message, errorBox(error));
    }
    refresh();
  };

  put(main, heading(t("jobsTitle")));
  if (canWrite()) {
    const sent = h("progress", { max: 100, value: 0, hidden: true, "aria-label": t("uploading") });
    const form = h(
      "form",
      { class: "job-form" },
      field("archive", t("jobZip"), { type: "file", accept: ".zip,application/zip", required: true }),
      h("fieldset", { class: "place" }, h("legend", {}, t("placeLegend")), field("region", t("region"), { maxlength: 200 }), field("township", t("township"), { maxlength: 200 }), field("village", t("village"), { maxlength: 200 })),
      field("note", t("note"), { rows: 2, maxlength: 4000 }, "textarea"),
      // Drone frames are why jobs exist: tile them unless told otherwise (docs/drone.md).
      select("tile", t("jobTile"), ["auto", "on", "off"].map((mode) => [mode, t(`jobTile_${mode}`)]), "auto"),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("jobSubmit")), sent),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const archive = form.elements.archive.files[0];
      if (!archive) {
        put(message, h("p", { class: "error", role: "alert" }, t("noFiles")));
        return;
      }
      const body = new FormData();
      body.append("archive", archive, archive.name);
      for (const name of ["region", "township", "village", "note"]) if (form.elements[name].value.trim()) body.append(name, form.elements[name].value.trim());
      body.append("tile", form.elements.tile.value);
      put(message);
      sent.hidden = false;
      try {
        const job = await upload("/v1/jobs/zip", body, { onProgress: (loaded) => { sent.value = Math.round((loaded / archive.size) * 100); } });
        announce(`#${job.id} ${t(`jobStatus_${job.status}`)}`);
        form.reset();
      } catch (error) {
        put(message, errorBox(error));
      }
      sent.hidden = true;
      refresh();
    });
    main.append(form);
  }
  main.append(message, h("h2", {}, t("jobsRecent")), list);
  refresh();
  return () => { stopped = true; window.clearTimeout(timer); };
}
