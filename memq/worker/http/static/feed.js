// The live feed: records as they are processed, pushed over Server-Sent Events.

import { api, showError, state } from "./api.js";
import { $, assistantOf, el, originLabels, setAssistant, setAuthor, short, when } from "./dom.js";
import { openButton } from "./search.js";

function feedItem(item) {
  const li = el("li", null, { "data-ref": item.ref, "data-seq": String(item.seq) });
  li.append(el("span", item.record_type + (item.kind ? ` · ${item.kind}` : ""), { class: "kind" }));
  const assistant = assistantOf(item.session_key);
  if (assistant) li.append(el("span", assistant, { class: "assistant" }));
  li.append(...originLabels(item));
  li.append(openButton(item.ref, item.title || item.ref));
  li.append(el("div", `${item.ref} · ${item.project || "no project"} · ${short(item.session_key)} · ${when(item.created_at)}`, { class: "meta" }));
  return li;
}

export function startFeed() {
  if (state.feed) state.feed.close();
  const list = $("feed-list");
  list.replaceChildren();
  const params = new URLSearchParams();
  const project = $("feed-project").value.trim();
  const session = $("feed-session").value.trim();
  if (project) params.set("project", project);
  if (session) params.set("session", session);
  setAssistant(params, "feed-assistant");
  setAuthor(params, "feed-author");
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
