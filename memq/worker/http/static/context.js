// The context preview: exactly what the next session in a project will be told.

import { api, clearError, loadProjects, showError } from "./api.js";
import { $, setAssistant, setAuthor } from "./dom.js";

export async function loadContextView() {
  const answer = await loadProjects();
  if (!$("context-project").value && answer.items.length) $("context-project").value = answer.items[0].project;
}

export async function previewContext(event) {
  event.preventDefault();
  clearError();
  try {
    const project = $("context-project").value.trim();
    const params = setAuthor(setAssistant(new URLSearchParams({ project }), "context-assistant"), "context-author");
    const answer = await api(`/api/context?${params}`);
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
