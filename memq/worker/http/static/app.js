// memq's viewer. Everything that comes from memory is untrusted: it is put in the page with
// textContent only (never as markup), so a prompt holding "<script>" shows as text.

const $ = (id) => document.getElementById(id);
const state = { csrf: null, feed: null, session: null, view: "feed", records: null };

/** An element with text (and optional attributes and children). */
function el(tag, text, attrs = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

class LoginNeeded extends Error {}

/** A JSON API call with the session cookie; a change carries the CSRF header. */
async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-Memq-CSRF"] = state.csrf || "";
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    showLogin();
    throw new LoginNeeded("run memq open");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${path}: HTTP ${response.status}`);
  return data;
}

function showLogin() {
  $("login-needed").hidden = false;
  if (state.feed) state.feed.close();
}

function showError(error) {
  if (error instanceof LoginNeeded) return;
  const box = $("error");
  box.textContent = String(error.message || error);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

function short(key) {
  return key && key.length > 24 ? `${key.slice(0, 22)}…` : key || "";
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** A search snippet, its [highlights] as <mark> elements (built as text nodes). */
function highlighted(snippet) {
  const out = el("span");
  for (const [index, part] of String(snippet || "").split(/\[([^\]]*)\]/).entries()) {
    out.append(index % 2 ? el("mark", part) : document.createTextNode(part));
  }
  return out;
}

// ---- views -------------------------------------------------------------------------------

const loaders = {
  feed: () => {},
  queue: loadQueue,
  sessions: loadSessions,
  session: () => (state.session ? loadSession(state.session) : loadSessions()),
  search: () => {},
  context: loadProjects,
};

function show(view) {
  state.view = view in loaders ? view : "feed";
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.dataset.view !== state.view;
  }
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.dataset.view === state.view
      || (state.view === "session" && link.dataset.view === "sessions");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clearError();
  Promise.resolve(loaders[state.view]()).catch(showError);
}

function route() {
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash.startsWith("session/")) {
    state.session = hash.slice("session/".length);
    show("session");
  } else {
    show(hash || "feed");
  }
}

// ---- live feed ---------------------------------------------------------------------------

function feedItem(item) {
  const li = el("li", null, { "data-ref": item.ref, "data-seq": String(item.seq) });
  li.append(el("span", item.record_type + (item.kind ? ` · ${item.kind}` : ""), { class: "kind" }));
  li.append(openButton(item.ref, item.title || item.ref));
  li.append(el("div", `${item.ref} · ${item.project || "no project"} · ${short(item.session_key)} · ${when(item.created_at)}`, { class: "meta" }));
  return li;
}

function startFeed() {
  if (state.feed) state.feed.close();
  const list = $("feed-list");
  list.replaceChildren();
  const params = new URLSearchParams();
  const project = $("feed-project").value.trim();
  const session = $("feed-session").value.trim();
  if (project) params.set("project", project);
  if (session) params.set("session", session);
  const source = new EventSource(`/api/feed?${params}`);
  state.feed = source;
  const label = $("feed-state");
  source.addEventListener("open", () => { label.textContent = "live"; });
  source.addEventListener("error", () => {
    label.textContent = "reconnecting…";
    // A 401 closes the stream for good: find out whether the login is gone.
    if (source.readyState === EventSource.CLOSED) api("/api/session").catch(showError);
  });
  source.addEventListener("record", (event) => {
    let item;
    try { item = JSON.parse(event.data); } catch { return; }
    // Newest first; the resumed stream never repeats an id, but a restart of ours might.
    if (list.querySelector(`li[data-seq="${Number(item.seq)}"]`)) return;
    const li = feedItem(item);
    li.classList.add("new");
    list.prepend(li);
    while (list.children.length > 500) list.lastElementChild.remove();
  });
}

// ---- queue -------------------------------------------------------------------------------

async function loadQueue() {
  const status = await api("/api/status");
  renderState(status);
  const counts = $("queue-counts");
  counts.replaceChildren();
  for (const [name, value] of Object.entries(status.counts || {})) {
    counts.append(el("div", null, {}, [el("dt", name), el("dd", value, { id: `count-${name}` })]));
  }
  const paused = status.paused_sessions || [];
  $("queue-paused").textContent = status.paused
    ? `Paused: ${status.pause_reason || "no reason given"}`
    : paused.length ? `Paused sessions: ${paused.map((s) => s.session_id || s).join(", ")}` : "";
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

function renderState(status) {
  const text = status.state === "running" && status.paused ? "paused" : status.state;
  $("daemon-state").textContent = text ? `daemon: ${text}` : "";
}

// ---- sessions ----------------------------------------------------------------------------

// Lists that can grow come a page at a time; "More" asks for the next one.
const PAGE = 50;

/** A "More" button's state: shown while fewer than `total` items are on the page. */
function setMore(id, shown, total) {
  const button = $(id);
  button.hidden = shown >= total;
  button.disabled = false;
  button.textContent = `More (${shown} of ${total})`;
}

async function loadSessions(more = false) {
  const list = $("session-list");
  const offset = more ? list.querySelectorAll("li[data-key]").length : 0;
  const answer = await api(`/api/sessions?limit=${PAGE}&offset=${offset}`);
  if (!more) list.replaceChildren();
  for (const item of answer.items) {
    if (list.querySelector(`li[data-key="${CSS.escape(item.key)}"]`)) continue;
    const link = el("a", item.title || "(untitled)", { href: `#session/${encodeURIComponent(item.key)}` });
    const counts = `${item.prompt_count} prompts · ${item.observation_count} observations · ${item.summary_count} summaries`;
    list.append(el("li", null, { "data-key": item.key }, [
      link,
      el("div", `${item.project || "no project"} · ${counts} · ${when(item.updated_at)}`, { class: "meta" }),
      ...(item.parent_key ? [el("div", `fork of ${short(item.parent_key)}`, { class: "meta" })] : []),
    ]));
  }
  const shown = list.querySelectorAll("li[data-key]").length;
  if (!shown) list.append(el("li", "No sessions yet."));
  setMore("sessions-more", shown, answer.total ?? shown);
}

function renderSessionRecords() {
  const { prompts, observations, summaries } = state.records;
  const records = [
    ...prompts.map((p) => ({ ...p, ref: `#P${p.id}`, label: "prompt", title: p.text })),
    ...observations.map((o) => ({ ...o, ref: `#${o.id}`, label: o.kind || "observation" })),
    ...summaries.map((s) => ({ ...s, ref: `#S${s.id}`, label: "summary", title: s.title || s.request || s.completed })),
  ].sort((a, b) => (a.message_id ?? 0) - (b.message_id ?? 0) || String(a.created_at).localeCompare(String(b.created_at)));
  const list = $("session-records");
  list.replaceChildren();
  for (const record of records) {
    list.append(el("li", null, { "data-ref": record.ref }, [
      el("span", record.label, { class: "kind" }),
      el("span", record.title || record.ref),
      el("div", `${record.ref} · ${when(record.created_at)}`, { class: "meta" }),
    ]));
  }
  const { totals } = state.records;
  setMore("session-more", observations.length + summaries.length, totals.observations + totals.summaries);
}

/** The next page of the session's observations and summaries (each while some are left). */
async function moreSessionRecords(key) {
  const path = `/api/sessions/${encodeURIComponent(key)}`;
  const records = state.records;
  const next = async (name) => {
    if (records[name].length >= records.totals[name]) return;
    const answer = await api(`${path}/${name}?limit=${PAGE}&offset=${records[name].length}`);
    records[name].push(...answer.items);
    records.totals[name] = answer.total ?? records[name].length;
  };
  await Promise.all([next("observations"), next("summaries")]);
  if (state.records === records) renderSessionRecords();
}

async function loadSession(key) {
  const path = `/api/sessions/${encodeURIComponent(key)}`;
  const [session, observations, summaries] = await Promise.all([
    api(path),
    api(`${path}/observations?limit=${PAGE}`),
    api(`${path}/summaries?limit=${PAGE}`),
  ]);
  $("session-h").textContent = session.title || "(untitled)";
  $("title-input").value = session.title || "";
  $("title-saved").textContent = "";
  $("session-meta").textContent = `${session.key} · ${session.project || "no project"} · started ${when(session.started_at)}`;
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
}

async function saveTitle(event) {
  event.preventDefault();
  const title = $("title-input").value.trim();
  try {
    const path = `/api/sessions/${encodeURIComponent(state.session)}/title`;
    const saved = await api(path, { method: "PUT", body: { title: title || null } });
    $("session-h").textContent = saved.title || title;
    $("title-saved").textContent = "Saved.";
  } catch (error) {
    showError(error);
  }
}

// ---- search and records ------------------------------------------------------------------

function openButton(ref, text) {
  const button = el("button", text, { type: "button", class: "linkish" });
  button.addEventListener("click", () => openRecord(ref).catch(showError));
  return button;
}

async function search(event) {
  event.preventDefault();
  clearError();
  const params = new URLSearchParams({ q: $("search-q").value, limit: "50" });
  const project = $("search-project").value.trim();
  if (project) params.set("project", project);
  try {
    const answer = await api(`/api/search?${params}`);
    $("search-total").textContent = `${answer.total} result${answer.total === 1 ? "" : "s"}`;
    const list = $("search-results");
    list.replaceChildren();
    for (const item of answer.items) {
      const ref = item.record_type === "summary" ? `#S${item.id}` : item.record_type === "prompt" ? `#P${item.id}` : `#${item.id}`;
      list.append(el("li", null, { "data-ref": ref }, [
        el("span", item.record_type + (item.kind ? ` · ${item.kind}` : ""), { class: "kind" }),
        openButton(ref, item.title || ref),
        el("div", null, { class: "snippet" }, [highlighted(item.snippet)]),
        el("div", `${ref} · ${item.project || ""} · ${when(item.created_at)}`, { class: "meta" }),
      ]));
    }
  } catch (error) {
    showError(error);
  }
}

async function openRecord(ref) {
  const answer = await api(`/api/records?ids=${encodeURIComponent(ref)}`);
  if (state.view !== "search") location.hash = "search";
  const box = $("record");
  box.replaceChildren();
  const record = answer.items[0];
  if (!record) {
    box.append(el("p", `${ref} was not found.`));
  } else {
    box.append(el("h3", `${record.ref} ${record.title || record.text || ""}`));
    const fields = el("dl");
    for (const [name, value] of Object.entries(record)) {
      if (value === null || value === "" || (Array.isArray(value) && !value.length)) continue;
      if (["ref", "title", "id"].includes(name)) continue;
      const text = Array.isArray(value) ? value.join(", ") : typeof value === "object" ? JSON.stringify(value) : value;
      fields.append(el("dt", name), el("dd", text));
    }
    box.append(fields);
    const close = el("button", "Close", { type: "button" });
    close.addEventListener("click", () => { box.hidden = true; });
    box.append(close);
  }
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

// ---- context preview ---------------------------------------------------------------------

async function loadProjects() {
  const answer = await api("/api/sessions?limit=100");
  const projects = [...new Set(answer.items.map((s) => s.project).filter(Boolean))];
  $("projects").replaceChildren(...projects.map((p) => el("option", null, { value: p })));
  if (!$("context-project").value && projects.length) $("context-project").value = projects[0];
}

async function previewContext(event) {
  event.preventDefault();
  clearError();
  try {
    const project = $("context-project").value.trim();
    const answer = await api(`/api/context?project=${encodeURIComponent(project)}`);
    // memq's own estimate: characters / 4, rounded up (memq.memory.context.estimate_tokens).
    const tokens = Math.ceil([...answer.context].length / 4);
    $("context-size").textContent = answer.context
      ? `≈ ${tokens} tokens (${[...answer.context].length} characters)`
      : answer.has_memory ? "Empty: the budget is too small for any of it." : "memq knows nothing of this project yet.";
    $("context-text").textContent = answer.context;
  } catch (error) {
    showError(error);
  }
}

// ---- start -------------------------------------------------------------------------------

async function start() {
  $("feed-filter").addEventListener("submit", (event) => { event.preventDefault(); startFeed(); });
  $("title-form").addEventListener("submit", saveTitle);
  $("search-form").addEventListener("submit", search);
  $("context-form").addEventListener("submit", previewContext);
  $("sessions-more").addEventListener("click", (event) => {
    event.currentTarget.disabled = true;
    loadSessions(true).catch(showError);
  });
  $("session-more").addEventListener("click", (event) => {
    event.currentTarget.disabled = true;
    if (state.records) moreSessionRecords(state.records.key).catch(showError);
  });
  window.addEventListener("hashchange", route);
  try {
    const session = await api("/api/session");
    state.csrf = session.csrf || null;
    renderState(await api("/api/status"));
  } catch (error) {
    showError(error);
    return;
  }
  startFeed();
  route();
  document.body.dataset.ready = "true";
}

start();
