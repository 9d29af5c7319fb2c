// Erasure of everything of one actor, as a job the API runs in the
// background. The API has no list of jobs: the ones started in this tab are
// kept in its memory (forgotten on reload or sign-out) and polled until done.
import { confirmDialog, errorBox, field, fill, h, status, table, when } from "../dom.js";

const POLL_MS = 1000;

/** Jobs started in this tab, newest first: { job, error, polling }. */
let jobs = [];
/** Bumped on sign-out: pollers of an older generation stop. */
let generation = 0;
/** Re-renders the job table when the page is showing (else null). */
let onChange = null;

/** Forgets every job (on sign-out: they belong to the signed-in org). */
export function forgetErasures() {
  jobs = [];
  generation += 1;
  onChange = null;
}

function changed() {
  if (onChange) onChange();
}

function poll(api, entry) {
  const gen = generation;
  entry.polling = true;
  entry.error = null;
  changed();
  const tick = async () => {
    if (gen !== generation) return;
    try {
      entry.job = await api("GET", `/v1/erasures/${encodeURIComponent(entry.job.id)}`);
    } catch (err) {
      if (gen !== generation) return;
      entry.error = err;
      entry.polling = false;
      changed();
      return;
    }
    if (gen !== generation) return;
    if (entry.job.state === "done") entry.polling = false;
    else setTimeout(tick, POLL_MS);
    changed();
  };
  setTimeout(tick, POLL_MS);
}

function progressCell(api, entry) {
  if (entry.error) {
    const again = h("button", { type: "button", on: { click: () => poll(api, entry) } }, "Check again");
    again.setAttribute("aria-label", `Check erasure ${entry.job.id} again`);
    return h("div", {}, errorBox(entry.error), again);
  }
  if (entry.polling) return "Checking every second…";
  return entry.job.state === "done" ? "Finished." : "—";
}

function jobRows(api) {
  return jobs.map((entry) => [
    h("span", { class: "content" }, entry.job.actor),
    h("span", { class: `state state-${entry.job.state}` }, entry.job.state),
    String(entry.job.deleted),
    when(entry.job.started_at),
    when(entry.job.finished_at),
    h("code", {}, entry.job.id),
    progressCell(api, entry),
  ]);
}

export async function erasuresPage(el, ctx) {
  const actor = h("input", { type: "text", required: true, maxlength: "256", autocomplete: "off", spellcheck: "false" });
  const submit = h("button", { type: "submit", class: "danger" }, "Erase everything of this actor");
  const out = h("div", { "aria-live": "polite" });
  const list = h("div", { class: "jobs" });
  const showJobs = () => {
    if (!ctx.current() || !list.isConnected) {
      onChange = null;
      return;
    }
    fill(
      list,
      jobs.length
        ? table("Erasure jobs started in this tab, newest first", ["Actor", "State", "Deleted", "Started", "Finished", "Id", "Progress"], jobRows(ctx.api))
        : status("No erasure started in this tab yet."),
    );
  };
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "erase-title" },
    h("h2", { id: "erase-title" }, "Erase everything of an actor"),
    field("Actor", actor, "Exact match. Every interaction of this actor is deleted for good, including those stored while the job runs.")[0],
    submit,
    out,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const who = actor.value;
    if (!who) return;
    const ok = await confirmDialog(
      `Erase everything of actor "${who}"?`,
      `Every interaction whose actor is exactly "${who}" is deleted for good (the erasure is written to the audit log). This cannot be undone.`,
      "Erase",
    );
    if (!ok) return;
    submit.disabled = true;
    fill(out, status(`Starting the erasure of "${who}"…`));
    try {
      const job = await ctx.api("POST", "/v1/erasures", { body: { actor: who } });
      const known = jobs.find((x) => x.job.id === job.id);
      if (known) {
        fill(out, h("p", { class: "notice", role: "status" }, `An erasure of "${who}" is already running (${job.id}).`));
      } else {
        const entry = { job, error: null, polling: false };
        jobs.unshift(entry);
        fill(out, h("p", { class: "notice", role: "status" }, `Erasure ${job.id} of "${who}" started.`));
        actor.value = "";
        if (job.state !== "done") poll(ctx.api, entry);
      }
      showJobs();
    } catch (err) {
      fill(out, errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  onChange = showJobs;
  fill(
    el,
    h("h1", {}, "Erasures"),
    h(
      "p",
      { class: "hint" },
      "An erasure deletes every interaction of one actor in the background and reports how many it deleted. " +
        "The API has no list of erasure jobs: the jobs started in this tab are kept in its memory only, " +
        "and forgotten when you reload, sign out or close the tab (a job keeps running; look it up by its id with GET /v1/erasures/{id}).",
    ),
    form,
    h("h2", {}, "Jobs started in this tab"),
    list,
  );
  showJobs();
}
