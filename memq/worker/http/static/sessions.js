// Sessions: the list, and a session's page (its records in time order, its title and
// settings, and fork / revert / delete / export, each asked for first).

import { api, request, sessionPath, showError, state } from "./api.js";
import {
  $, assistantOf, confirmAction, el, originLabels, setAssistant, setAuthor, short, when,
} from "./dom.js";

// Lists that can grow come a page at a time; "More" asks for the next one.
const PAGE = 50;

/** A "More" button's state: shown while fewer than `total` items are on the page. */
function setMore(id, shown, total) {
  const button = $(id);
  button.hidden = shown >= total;
  button.disabled = false;
  button.textContent = `More (${shown} of ${total})`;
}

export async function loadSessions(more = false) {
  const list = $("session-list");
  const offset = more ? list.querySelectorAll("li[data-key]").length : 0;
  const params = setAuthor(setAssistant(new URLSearchParams({ limit: String(PAGE), offset: String(offset) }), "sessions-assistant"), "sessions-author");
  const answer = await api(`/api/sessions?${params}`);
  if (!more) list.replaceChildren();
  for (const item of answer.items) {
    if (list.querySelector(`li[data-key="${CSS.escape(item.key)}"]`)) continue;
    const link = el("a", item.title || "(untitled)", { href: `#session/${encodeURIComponent(item.key)}` });
    const counts = `${item.prompt_count} prompts · ${item.observation_count} observations · ${item.summary_count} summaries`;
    list.append(el("li", null, { "data-key": item.key }, [
      el("span", item.assistant || assistantOf(item.key), { class: "assistant" }),
      link,
      el("div", `${item.project || "no project"} · ${counts} · ${when(item.updated_at)}`, { class: "meta" }),
      ...(item.parent_key ? [el("div", `fork of ${short(item.parent_key)}`, { class: "meta" })] : []),
    ]));
  }
  const shown = list.querySelectorAll("li[data-key]").length;
  if (!shown) list.append(el("li", "No sessions yet."));
  setMore("sessions-more", shown, answer.total ?? shown);
}

// ---- a session's records ----------------------------------------------------------------

function sortedRecords() {
  const { prompts, observations, summaries } = state.records;
  return [
    ...prompts.map((p) => ({ ...p, ref: `#P${p.id}`, label: "prompt", title: p.text })),
    ...observations.map((o) => ({ ...o, ref: `#${o.id}`, label: o.kind || "observation" })),
    ...summaries.map((s) => ({ ...s, ref: `#S${s.id}`, label: "summary", title: s.title || s.request || s.completed })),
  ].sort((a, b) => (a.message_id ?? 0) - (b.message_id ?? 0) || String(a.created_at).localeCompare(String(b.created_at)));
}

/** The message a revert "to before" `record` keeps last: the one just before it, when every
 * record before it is on the page (pages come oldest first), else null (no safe cut). */
function cutBefore(records, index) {
  const { observations, summaries, totals } = state.records;
  const id = records[index].message_id;
  const complete = (items, total) => items.length >= total || (items.length && items[items.length - 1].message_id > id);
  if (!complete(observations, totals.observations) || !complete(summaries, totals.summaries)) return null;
  for (let at = index - 1; at >= 0; at -= 1) {
    if (records[at].message_id !== null && records[at].message_id < id) return records[at].message_id;
  }
  return null;
}

function renderSessionRecords() {
  const records = sortedRecords();
  const list = $("session-records");
  list.replaceChildren();
  for (const [index, record] of records.entries()) {
    const li = el("li", null, { "data-ref": record.ref }, [
      el("span", record.label, { class: "kind" }),
      ...originLabels(record),
      el("span", record.title || record.ref),
      el("div", `${record.ref} · message ${record.message_id ?? "?"} · ${when(record.created_at)}`, { class: "meta" }),
    ]);
    if (record.label === "prompt") {
      const cut = cutBefore(records, index);
      const revert = el("button", "Revert to before this prompt", { type: "button", class: "small" });
      if (cut === null) {
        revert.disabled = true;
        revert.title = "Nothing before it to keep (delete the session instead), or load more first";
      }
      revert.addEventListener("click", () => revertSession({ after: cut }, `everything from prompt ${record.ref} on`));
      li.append(revert);
    }
    list.append(li);
  }
  // Who worked in it (of the records on the page): a team server's session is someone's.
  const authors = [...new Set(records.map((record) => record.author).filter(Boolean))];
  const machines = [...new Set(records.map((record) => record.machine).filter(Boolean))];
  $("session-authors").textContent = authors.map((author) => `[${author}]`).join(" ");
  $("session-authors").title = machines.length ? `machine: ${machines.join(", ")}` : "";
  const { observations, summaries, totals } = state.records;
  setMore("session-more", observations.length + summaries.length, totals.observations + totals.summaries);
}

/** The next page of the session's observations and summaries (each while some are left). */
export async function moreSessionRecords() {
  const records = state.records;
  if (!records) return;
  const next = async (name) => {
    if (records[name].length >= records.totals[name]) return;
    const answer = await api(`${sessionPath(records.key)}/${name}?limit=${PAGE}&offset=${records[name].length}`);
    records[name].push(...answer.items);
    records.totals[name] = answer.total ?? records[name].length;
  };
  await Promise.all([next("observations"), next("summaries")]);
  if (state.records === records) renderSessionRecords();
}

export async function loadSession(key) {
  const path = sessionPath(key);
  // Until this load's answers are in, the page does not show the last load's as current: a
  // session opened again from the list would look loaded, and a setting typed meanwhile
  // would be overwritten by the answer (loadConfig fills the form).
  $("config-effective").textContent = "";
  if (state.records?.key !== key) $("session-records").replaceChildren();
  const [session, observations, summaries] = await Promise.all([
    api(path),
    api(`${path}/observations?limit=${PAGE}`),
    api(`${path}/summaries?limit=${PAGE}`),
  ]);
  $("session-h").textContent = session.title || "(untitled)";
  $("title-input").value = session.title || "";
  $("title-saved").textContent = "";
  $("action-done").textContent = "";
  const parent = session.parent_key ? ` · fork of ${session.parent_key}` : "";
  $("session-assistant").textContent = session.assistant || assistantOf(session.key);
  $("session-meta").textContent = `${session.key} · ${session.project || "no project"} · started ${when(session.started_at)}${parent}`;
  state.records = {
    key,
    prompts: session.prompts || [],
    observations: observations.items,
    summaries: summaries.items,
    totals: {
      observations: observations.total ?? observations.items.length,
      summaries: summaries.total ?? summaries.items.length,
    },
  };
  renderSessionRecords();
  await loadConfig(key);
}

export async function saveTitle(event) {
  event.preventDefault();
  const title = $("title-input").value.trim();
  try {
    const saved = await api(`${sessionPath(state.session)}/title`, { method: "PUT", body: { title: title || null } });
    $("session-h").textContent = saved.title || title;
    $("title-saved").textContent = "Saved.";
  } catch (error) {
    showError(error);
  }
}

// ---- settings ---------------------------------------------------------------------------

async function loadConfig(key) {
  const answer = await api(`${sessionPath(key)}/config`);
  if (state.session !== key) return;
  const own = new Set(answer.set || []);
  state.config = {
    paused: Boolean(answer.config.paused),
    processor: own.has("processor") ? answer.config.processor || "" : "",
    model: own.has("model") ? answer.config.model || "" : "",
  };
  $("config-paused").checked = state.config.paused;
  $("config-processor").value = state.config.processor;
  $("config-model").value = state.config.model;
  $("config-processor").placeholder = `default: ${answer.effective.processor || "?"}`;
  $("config-model").placeholder = `default: ${answer.effective.model || "the processor's"}`;
  $("config-effective").textContent = `Next message: processor ${answer.effective.processor || "?"}`
    + `${answer.effective.model ? `, model ${answer.effective.model}` : ""}`
    + (answer.pause ? ` · paused: ${answer.pause.reason}` : "");
}

/** Only what changed is written; an emptied field (or pause unticked) drops the session's
 * own value, and the daemon's default applies again. */
export async function saveConfig(event) {
  event.preventDefault();
  const key = state.session;
  const path = `${sessionPath(key)}/config`;
  const loaded = state.config || {};
  $("config-saved").textContent = "";
  try {
    const paused = $("config-paused").checked;
    if (paused !== loaded.paused) {
      if (paused) await api(`${path}/paused`, { method: "PUT", body: { value: true } });
      else await api(`${path}/paused`, { method: "DELETE" });
    }
    for (const name of ["processor", "model"]) {
      const value = $(`config-${name}`).value.trim();
      if (value === (loaded[name] || "")) continue;
      if (value) await api(`${path}/${name}`, { method: "PUT", body: { value } });
      else await api(`${path}/${name}`, { method: "DELETE" });
    }
    $("config-saved").textContent = "Saved.";
  } catch (error) {
    showError(error);
  }
  await loadConfig(key).catch(showError);
}

// ---- operations -------------------------------------------------------------------------

async function revertSession(body, what) {
  const key = state.session;
  if (!(await confirmAction(`Forget ${what} in ${key}? This cannot be undone.`, "Revert"))) return;
  try {
    const done = await api(`${sessionPath(key)}/revert`, { method: "POST", body });
    await loadSession(key);
    $("action-done").textContent = `Reverted: ${done.memory_rows} records and ${done.queue_rows} queued messages forgotten.`;
  } catch (error) {
    showError(error);
  }
}

export function revertLast(event) {
  event.preventDefault();
  const last = Number($("revert-last").value);
  revertSession({ last }, `the newest ${last} message${last === 1 ? "" : "s"}`);
}

export async function forkSession() {
  const key = state.session;
  if (!(await confirmAction(`Fork ${key} into a new session with a copy of its memory?`, "Fork"))) return;
  try {
    const fork = await api(`${sessionPath(key)}/fork`, { method: "POST" });
    location.hash = `session/${encodeURIComponent(fork.child)}`;
  } catch (error) {
    showError(error);
  }
}

export async function deleteSession() {
  const key = state.session;
  if (!(await confirmAction(`Delete ${key}: its memory, queued messages and settings? This cannot be undone.`, "Delete"))) return;
  try {
    await api(sessionPath(key), { method: "DELETE" });
    state.session = null;
    location.hash = "sessions";
  } catch (error) {
    showError(error);
  }
}

/** The session's `memq export` file (JSON Lines), downloaded from memory held in the page. */
export async function exportSession() {
  const key = state.session;
  if (!(await confirmAction(`Download the export of ${key} (its memory as JSON Lines)?`, "Export"))) return;
  try {
    const response = await request(`${sessionPath(key)}/export`);
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error(data.error || `export: HTTP ${response.status}`);
    }
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", null, { href: url, download: `${key.replace(/[^A-Za-z0-9._-]+/g, "_")}.jsonl` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    showError(error);
  }
}
