// Building the page. Everything that comes from memory is untrusted: it is put in the page with
// textContent only (never as markup), so a prompt holding "<script>" shows as text.

export const $ = (id) => document.getElementById(id);

/** An element with text (and optional attributes and children). */
export function el(tag, text, attrs = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

export function short(key) {
  return key && key.length > 24 ? `${key.slice(0, 22)}…` : key || "";
}

/** The assistant a session key names: the part before the first ":" ("claude-code"). */
// memq.assistants.NAMES: the assistants whose sessions memq keys, for the filters.
export const ASSISTANTS = ["claude-code", "codex", "gemini-cli", "cursor", "opencode"];

/** Every assistant filter on the page gets one option per assistant (after "any"). */
export function fillAssistantFilters() {
  for (const select of document.querySelectorAll("select.assistant-filter")) {
    select.append(...ASSISTANTS.map((name) => el("option", name, { value: name })));
  }
}

/** The filter's choice as a query parameter, when one is chosen. */
export function setAssistant(params, id) {
  const value = $(id).value;
  if (value) params.set("assistant", value);
  return params;
}

/** The author filter's names (comma-separated) as a query parameter, when some are given. */
export function setAuthor(params, id) {
  const value = $(id).value.split(",").map((name) => name.trim()).filter(Boolean).join(",");
  if (value) params.set("author", value);
  return params;
}

/**
 * Who produced a record, as labels to put before its title: "[alice]" (its machine on hover)
 * for a record with an author (a team key's name; records made here by this machine's user
 * have none), and "team" for a record of the team server. An empty list for neither.
 */
export function originLabels(item) {
  const labels = [];
  if (item.team) labels.push(el("span", "team", { class: "team", title: "a record of the team server" }));
  if (item.author) {
    const machine = item.machine ? `machine: ${item.machine}` : "machine not known";
    labels.push(el("span", `[${item.author}]`, { class: "author", title: machine }));
  }
  return labels;
}

export function assistantOf(key) {
  const text = String(key || "");
  const colon = text.indexOf(":");
  return colon > 0 ? text.slice(0, colon) : "";
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** A byte count in human units (1024-based, as `memq status` shows them). */
export function bytes(n) {
  const value = Number(n) || 0;
  if (value < 1024) return `${value} B`;
  let scaled = value;
  for (const unit of ["KB", "MB", "GB", "TB"]) {
    scaled /= 1024;
    if (scaled < 1024 || unit === "TB") return `${scaled.toFixed(1)} ${unit}`;
  }
  return `${value} B`;
}

/** Seconds as "45s", "1m30s" or "2h05m". */
export function duration(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours) return `${hours}h${String(minutes).padStart(2, "0")}m`;
  return minutes ? `${minutes}m${String(secs).padStart(2, "0")}s` : `${secs}s`;
}

/** A share (0..1) as a percentage, or "–" while there is nothing to divide by. */
export function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)} %`;
}

/** A search snippet, its [highlights] as <mark> elements (built as text nodes). */
export function highlighted(snippet) {
  const out = el("span");
  for (const [index, part] of String(snippet || "").split(/\[([^\]]*)\]/).entries()) {
    out.append(index % 2 ? el("mark", part) : document.createTextNode(part));
  }
  return out;
}

/** The reference of a record as the API gives it: #12, #S3, #P7 (team#12: the team's). */
export function refOf(item) {
  // A team hit's ids are the team server's: "#12" would name the local record of that id.
  if (item.team && item.ref) return item.ref;
  if (item.record_type === "summary") return `#S${item.id}`;
  if (item.record_type === "prompt") return `#P${item.id}`;
  return `#${item.id}`;
}

/** A table: `columns` are [heading, cell(row)] pairs; cells are text. */
export function table(columns, rows, attrs = {}) {
  const head = el("tr", null, {}, columns.map(([name]) => el("th", name, { scope: "col" })));
  const body = rows.map((row) => el("tr", null, {}, columns.map(([, cell]) => el("td", cell(row)))));
  const wrap = el("div", null, { class: "scroll" });
  wrap.append(el("table", null, attrs, [el("thead", null, {}, [head]), el("tbody", null, {}, body)]));
  return wrap;
}

/**
 * Ask before a change that cannot be undone, in the page's own dialog (keyboard: Tab between
 * the buttons, Escape cancels; Cancel has the focus first). Resolves true when confirmed.
 */
export function confirmAction(message, action) {
  const dialog = $("confirm");
  $("confirm-text").textContent = message;
  $("confirm-ok").textContent = action;
  return new Promise((resolve) => {
    const done = (answer) => {
      dialog.removeEventListener("close", onClose);
      $("confirm-ok").onclick = null;
      $("confirm-cancel").onclick = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onClose = () => done(false);
    dialog.addEventListener("close", onClose);
    $("confirm-ok").onclick = () => done(true);
    $("confirm-cancel").onclick = () => done(false);
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}
