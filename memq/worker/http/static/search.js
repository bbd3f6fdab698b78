// Search with `memq search`'s filters; a result opens the record and its timeline (the records
// of its session just before and after it), the record itself marked. On a laptop with a team
// server, the team's hits are merged in (marked `team`, named team#12): one opens the team's
// record, read through the daemon, never the local record that has the same id.

import { api, clearError, showError, state } from "./api.js";
import {
  $, assistantOf, el, highlighted, originLabels, refOf, setAssistant, setAuthor, short, when,
} from "./dom.js";

export function openButton(ref, text) {
  const button = el("button", text, { type: "button", class: "linkish" });
  button.addEventListener("click", () => openRecord(ref).catch(showError));
  return button;
}

/** A date field's day as an instant in the person's own time zone (`until`: that day's end). */
function day(id, end) {
  const value = $(id).value;
  if (!value) return null;
  const date = new Date(`${value}T${end ? "23:59:59.999" : "00:00:00"}`);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** The form's filters as /api/search's query parameters (the names `memq search` uses). */
function searchParams() {
  const form = $("search-form");
  const params = new URLSearchParams({ q: $("search-q").value, limit: "50" });
  for (const name of ["project", "session", "file", "limit", "min_score"]) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  for (const name of ["type", "kind"]) {
    for (const box of form.querySelectorAll(`input[name="${name}"]:checked`)) params.append(name, box.value);
  }
  if ($("search-fts").checked) params.set("syntax", "fts");
  setAssistant(params, "search-assistant");
  setAuthor(params, "search-author");
  const since = day("search-since", false);
  const until = day("search-until", true);
  if (since) params.set("since", since);
  if (until) params.set("until", until);
  return params;
}

export async function search(event) {
  event.preventDefault();
  clearError();
  try {
    const answer = await api(`/api/search?${searchParams()}`);
    const note = answer.team_note ? ` · ${answer.team_note}` : "";
    $("search-total").textContent = `${answer.total} result${answer.total === 1 ? "" : "s"}${note}`;
    const list = $("search-results");
    list.replaceChildren();
    for (const item of answer.items) {
      const ref = refOf(item);
      list.append(el("li", null, { "data-ref": ref, ...(item.team ? { class: "team-hit" } : {}) }, [
        el("span", item.record_type + (item.kind ? ` · ${item.kind}` : ""), { class: "kind" }),
        el("span", item.assistant || assistantOf(item.session_key), { class: "assistant" }),
        ...originLabels(item),
        openButton(ref, item.title || ref),
        el("div", null, { class: "snippet" }, [highlighted(item.snippet)]),
        el("div", `${ref} · ${item.project || ""} · ${when(item.created_at)}`, { class: "meta" }),
      ]));
    }
  } catch (error) {
    showError(error);
  }
}

function recordFields(record) {
  const fields = el("dl");
  for (const [name, value] of Object.entries(record)) {
    if (value === null || value === "" || (Array.isArray(value) && !value.length)) continue;
    if (["ref", "title", "id", "team"].includes(name)) continue; // the heading shows them
    const text = Array.isArray(value) ? value.join(", ") : typeof value === "object" ? JSON.stringify(value) : value;
    fields.append(el("dt", name), el("dd", text));
  }
  return fields;
}

/** The timeline around `ref`: its session's records in message order, the anchor marked. */
async function renderTimeline(ref, box) {
  const list = el("ol", null, { class: "items timeline", id: "timeline" });
  box.append(el("h4", "Timeline"), list);
  let answer;
  try {
    answer = await api(`/api/timeline?anchor=${encodeURIComponent(ref)}&before=5&after=5`);
  } catch (error) {
    list.append(el("li", `No timeline: ${error.message || error}`, { class: "meta" }));
    return;
  }
  const anchor = refOf(answer.anchor);
  for (const item of answer.items) {
    const itemRef = refOf(item);
    const here = itemRef === anchor;
    const li = el("li", null, { "data-ref": itemRef }, [
      el("span", item.record_type + (item.kind ? ` · ${item.kind}` : ""), { class: "kind" }),
      ...originLabels(item),
      here ? el("strong", item.title || itemRef) : openButton(itemRef, item.title || itemRef),
      el("div", `${itemRef} · ${when(item.created_at)}`, { class: "meta" }),
    ]);
    if (here) {
      li.classList.add("anchor");
      li.setAttribute("aria-current", "true");
      li.prepend(el("span", "this record", { class: "pill" }));
    }
    list.append(li);
  }
  box.append(el("p", `Session ${short(answer.session_key)}`, { class: "meta" }, [
    document.createTextNode(" · "),
    el("a", "open the session", { href: `#session/${encodeURIComponent(answer.session_key)}` }),
  ]));
}

export async function openRecord(ref) {
  const answer = await api(`/api/records?ids=${encodeURIComponent(ref)}`);
  if (state.view !== "search") location.hash = "search";
  const box = $("record");
  box.replaceChildren();
  const record = answer.items[0];
  const close = el("button", "Close", { type: "button" });
  close.addEventListener("click", () => { box.hidden = true; });
  if (!record) {
    box.append(el("p", `${ref} was not found.`), close);
  } else {
    const title = document.createTextNode(`${record.ref} ${record.title || record.text || ""}`);
    box.append(el("h3", null, {}, [...originLabels(record), title]), recordFields(record));
    if (record.team) {
      // Its session and neighbours are the team server's: this daemon has no timeline of it.
      box.append(el("p", "A record of the team server (its session is on the server).", { class: "meta" }));
    } else {
      await renderTimeline(record.ref || ref, box);
    }
    box.append(close);
  }
  box.hidden = false;
  box.focus({ preventScroll: true }); // a keyboard user lands on what was opened
  box.scrollIntoView({ block: "nearest" });
}
