// The queue: counts overall and per session, what is processing now and for how long, paused
// sessions and why, the database's size, failed messages with Retry; and the daemon's state.

import { api, showError } from "./api.js";
import { $, assistantOf, bytes, duration, el, short, table, when } from "./dom.js";

const STATUSES = ["pending", "processing", "processed", "failed"];
const SESSIONS_SHOWN = 100;

export function renderState(status) {
  const text = status.state === "running" && status.paused ? "paused" : status.state;
  $("daemon-state").textContent = text ? `daemon: ${text}` : "";
}

function renderCounts(status) {
  const counts = $("queue-counts");
  counts.replaceChildren();
  for (const [name, value] of Object.entries(status.counts || {})) {
    counts.append(el("div", null, {}, [el("dt", name), el("dd", value, { id: `count-${name}` })]));
  }
  $("queue-storage").textContent = `Database ${bytes(status.database_bytes)} · WAL ${bytes(status.wal_bytes)}`;
}

function renderProcessing(status) {
  const items = status.processing_messages || [];
  const list = $("processing-list");
  list.replaceChildren();
  $("processing-empty").hidden = items.length > 0;
  for (const item of items) {
    list.append(el("li", null, { "data-message": String(item.message_id) }, [
      el("span", item.kind, { class: "kind" }),
      el("span", `message ${item.message_id} · running ${duration(item.running_seconds)}`, { class: "running" }),
      el("div", `${item.session_id} · attempt ${item.attempts} · started ${when(item.started_at)}`, { class: "meta" }),
    ]));
  }
}

/** Every pause with its reason: all processing (a refused API key), a session's own setting,
 * a processor that cannot be created. */
function renderPaused(status) {
  const list = $("paused-list");
  list.replaceChildren();
  if (status.paused) {
    list.append(el("li", `All processing: ${status.pause_reason || "no reason given"} (fix it, then: memq resume)`, { class: "error-text" }));
  }
  for (const key of status.paused_sessions || []) {
    list.append(el("li", null, { "data-key": key }, [
      el("a", key, { href: `#session/${encodeURIComponent(key)}` }),
      el("div", "paused by its setting (unpause it on the session's page)", { class: "meta" }),
    ]));
  }
  for (const stopped of status.paused_processors || []) {
    for (const key of stopped.sessions || []) {
      list.append(el("li", null, { "data-key": key }, [
        el("a", key, { href: `#session/${encodeURIComponent(key)}` }),
        el("div", `waits for processor ${stopped.processor}: ${stopped.reason}`, { class: "meta" }),
      ]));
    }
  }
  $("paused-empty").hidden = list.children.length > 0;
}

/** Per-session counts, the busiest first (the first SESSIONS_SHOWN of them). */
function renderSessionCounts(status) {
  const sessions = [...(status.sessions || [])];
  const busy = (s) => s.counts.pending + s.counts.processing + s.counts.failed;
  sessions.sort((a, b) => busy(b) - busy(a) || a.session_id.localeCompare(b.session_id));
  const shown = sessions.slice(0, SESSIONS_SHOWN);
  const columns = [
    ["Session", (s) => short(s.session_id)],
    ["Assistant", (s) => assistantOf(s.session_id)],
    ...STATUSES.map((name) => [name, (s) => s.counts[name] ?? 0]),
  ];
  const box = $("queue-sessions");
  box.replaceChildren(table(columns, shown, { id: "session-counts" }));
  for (const [index, row] of [...box.querySelectorAll("tbody tr")].entries()) {
    row.dataset.key = shown[index].session_id;
    row.firstElementChild.title = shown[index].session_id;
  }
  if (sessions.length > shown.length) {
    box.append(el("p", `and ${sessions.length - shown.length} more sessions (memq status lists them all)`, { class: "meta" }));
  }
  if (!sessions.length) box.replaceChildren(el("p", "The queue holds no messages."));
}

export async function loadQueue() {
  const status = await api("/api/status");
  renderState(status);
  renderCounts(status);
  renderProcessing(status);
  renderPaused(status);
  renderSessionCounts(status);
  const failed = await api("/api/failed");
  const list = $("failed-list");
  list.replaceChildren();
  $("failed-empty").hidden = failed.items.length > 0;
  for (const item of failed.items) {
    const retry = el("button", "Retry", { type: "button" });
    retry.addEventListener("click", () => retryFailed(item.message_id, retry));
    list.append(el("li", null, { "data-message": String(item.message_id) }, [
      el("span", item.kind, { class: "kind" }),
      el("span", `message ${item.message_id} · ${short(item.session_id)} · ${item.attempts ?? "?"} attempts`),
      el("div", item.last_error || "", { class: "error-text" }),
      retry,
    ]));
  }
}

async function retryFailed(id, button) {
  button.disabled = true;
  try {
    await api("/api/failed/retry", { method: "POST", body: { id } });
    await loadQueue();
  } catch (error) {
    button.disabled = false;
    showError(error);
  }
}
