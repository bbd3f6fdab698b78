// memq's viewer: the views and the page's routing (#feed, #queue, #stats, #sessions,
// #session/<key>, #search, #context). Each view lives in a module of its own.

import { api, clearError, loadProjects, showError, state } from "./api.js";
import { $, fillAssistantFilters } from "./dom.js";
import { loadContextView, previewContext } from "./context.js";
import { startFeed } from "./feed.js";
import { loadQueue, renderState } from "./queue.js";
import { search } from "./search.js";
import {
  deleteSession, exportSession, forkSession, loadSession, loadSessions, moreSessionRecords,
  revertLast, saveConfig, saveTitle,
} from "./sessions.js";
import { loadStats } from "./stats.js";

const loaders = {
  feed: () => {},
  queue: loadQueue,
  stats: loadStats,
  sessions: () => loadSessions(),
  session: () => (state.session ? loadSession(state.session) : loadSessions()),
  search: () => {},
  context: loadContextView,
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

function on(id, type, handler) {
  $(id).addEventListener(type, handler);
}

async function start() {
  fillAssistantFilters();
  on("feed-filter", "submit", (event) => { event.preventDefault(); startFeed(); });
  on("sessions-filter", "submit", (event) => { event.preventDefault(); loadSessions().catch(showError); });
  on("title-form", "submit", saveTitle);
  on("config-form", "submit", saveConfig);
  on("revert-form", "submit", revertLast);
  on("fork-button", "click", forkSession);
  on("delete-button", "click", deleteSession);
  on("export-button", "click", exportSession);
  on("search-form", "submit", search);
  on("context-form", "submit", previewContext);
  on("queue-refresh", "click", () => loadQueue().catch(showError));
  on("sessions-more", "click", (event) => {
    event.currentTarget.disabled = true;
    loadSessions(true).catch(showError);
  });
  on("session-more", "click", (event) => {
    event.currentTarget.disabled = true;
    moreSessionRecords().catch(showError);
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
  // The project pickers' options; the page works without them.
  loadProjects().catch(() => {});
  document.body.dataset.ready = "true";
}

start();
