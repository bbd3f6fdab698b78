// The daemon's API as the page calls it: the session cookie goes along; a change carries the
// CSRF token (X-Memq-CSRF) the login gave.

import { $, el } from "./dom.js";

export const state = { csrf: null, feed: null, session: null, view: "feed", records: null };

export class LoginNeeded extends Error {}

function headers(method) {
  const out = { Accept: "application/json" };
  if (method !== "GET") {
    out["X-Memq-CSRF"] = state.csrf || "";
    out["Content-Type"] = "application/json";
  }
  return out;
}

/** The raw response of an API call (a 401 shows the login banner and throws). */
export async function request(path, { method = "GET", body } = {}) {
  const response = await fetch(path, {
    method,
    headers: headers(method),
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    showLogin();
    throw new LoginNeeded("run memq open");
  }
  return response;
}

/** A JSON API call; an answer that is not 2xx throws with the daemon's error text. */
export async function api(path, options = {}) {
  const response = await request(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${path}: HTTP ${response.status}`);
  return data;
}

export function showLogin() {
  $("login-needed").hidden = false;
  if (state.feed) state.feed.close();
}

export function showError(error) {
  if (error instanceof LoginNeeded) return;
  const box = $("error");
  box.textContent = String(error.message || error);
  box.hidden = false;
}

export function clearError() {
  $("error").hidden = true;
}

export function sessionPath(key) {
  return `/api/sessions/${encodeURIComponent(key)}`;
}

let projectsLoaded = null;

/** The projects memory knows (GET /api/projects, newest activity first) as the options of
 * the page's project fields; read once per page load unless `fresh`. */
export function loadProjects(fresh = false) {
  if (!projectsLoaded || fresh) {
    projectsLoaded = api("/api/projects?limit=1000").then((answer) => {
      const options = answer.items.map((p) => el("option", `${p.session_count} sessions`, { value: p.project }));
      $("projects").replaceChildren(...options);
      return answer;
    });
    projectsLoaded.catch(() => { projectsLoaded = null; });
  }
  return projectsLoaded;
}
