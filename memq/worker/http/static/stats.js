// Memory's use (GET /api/stats): contexts injected and their tokens, what the model fetched
// afterwards, and how often it reached into memory after an injection; overall and per project.

import { api } from "./api.js";
import { $, el, percent, short, table, when } from "./dom.js";

const FIGURES = [
  ["injections", "Contexts injected"],
  ["tokens", "Tokens injected"],
  ["fetches", "Model's memory calls"],
  ["searches", "Searches"],
  ["records_fetched", "Records fetched"],
  ["hit_rate", "Hit rate"],
  ["ref_hit_rate", "Shown record fetched"],
];

function figureText(name, value) {
  return name.endsWith("_rate") ? percent(value) : Number(value || 0).toLocaleString();
}

const COLUMNS = [
  ["Injected", (g) => g.injections],
  ["Tokens", (g) => Number(g.tokens || 0).toLocaleString()],
  ["Memory calls", (g) => g.fetches],
  ["Records fetched", (g) => g.records_fetched],
  ["Hit rate", (g) => percent(g.hit_rate)],
  ["Shown record fetched", (g) => percent(g.ref_hit_rate)],
];

export async function loadStats() {
  const answer = await api("/api/stats?sessions=10");
  const overall = $("stats-overall");
  overall.replaceChildren();
  for (const [name, label] of FIGURES) {
    overall.append(el("div", null, {}, [
      el("dt", label),
      el("dd", figureText(name, answer.overall[name]), { id: `stat-${name}` }),
    ]));
  }
  $("stats-since").textContent = answer.since
    ? `Since ${when(answer.since)}. A hit is an injection after which the model searched, read a timeline or fetched records in the same session.`
    : "Nothing recorded yet: figures appear once a session was given context.";
  const projects = answer.projects || [];
  $("stats-projects").replaceChildren(projects.length
    ? table([["Project", (g) => g.project || "no project"], ...COLUMNS], projects, { id: "stats-project-table" })
    : el("p", "No project yet.", { class: "meta" }));
  const sessions = answer.sessions || [];
  $("stats-sessions").replaceChildren(sessions.length
    ? table([["Session", (g) => short(g.session_key)], ["Last injected", (g) => when(g.last_injected_at)], ...COLUMNS], sessions)
    : el("p", "No session was given context yet.", { class: "meta" }));
}
