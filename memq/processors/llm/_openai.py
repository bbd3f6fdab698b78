"""The OpenAI Chat Completions API: ``POST {base}/chat/completions``, which local servers
(Ollama, llama.cpp, vLLM ...) also speak.

The request carries the key as ``Authorization: Bearer``, left out when no key is set (local
servers need none); its body holds ``model`` and the messages, the instructions first as a
``system`` message. OpenAI's own endpoint gets ``max_completion_tokens`` (its newer models
refuse the deprecated ``max_tokens``) and JSON mode (``response_format``); any other base URL
gets ``max_tokens``, which the compatible servers document, and no ``response_format``, which
not all of them accept. The answer's text is ``choices[0].message.content``;
``finish_reason`` is ``length`` when it was cut short, and ``message.refusal`` holds a refusal.
Errors come as ``{"error": {"message": ..., "type": ..., "code": ...}}``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx

from memq.processors.llm._client import ModelProcessor, usage_counts
from memq.processors.llm._settings import OPENAI, Provider
from memq.processors.llm.prompts import Prompt, invalid_output


class OpenAIProcessor(ModelProcessor):
    """Records written by a model behind the OpenAI Chat Completions API
    (``MEMQ_PROCESSOR=openai``)."""

    provider: ClassVar[Provider] = OPENAI

    def build_request(self, prompt: Prompt) -> httpx.Request:
        """``POST {base}/chat/completions`` with the instructions as a system message."""
        settings = self.settings
        headers = {}
        if settings.api_key is not None:
            headers["authorization"] = f"Bearer {settings.api_key}"
        body: dict[str, Any] = {
            "model": settings.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
            ],
        }
        if settings.official:
            body["max_completion_tokens"] = settings.max_tokens
            body["response_format"] = {"type": "json_object"}
        else:
            body["max_tokens"] = settings.max_tokens
        return self._client.build_request(
            "POST", f"{settings.base_url}/chat/completions", headers=headers, json=body
        )

    def answer_text(self, body: dict[str, Any]) -> str:
        """The first choice's message content."""
        choices = body.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(choice, dict) or not isinstance(message, dict):
            raise invalid_output("the API's answer holds no choice", json.dumps(body))
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            raise invalid_output("the model refused to answer", refusal)
        if choice.get("finish_reason") == "length":
            raise invalid_output(
                f"the answer was cut short at MEMQ_LLM_MAX_TOKENS={self.settings.max_tokens}",
                text,
            )
        if not text:
            raise invalid_output("the API's answer holds no text", json.dumps(body))
        return text

    def token_counts(self, body: dict[str, Any]) -> tuple[int | None, int | None]:
        """``usage.prompt_tokens`` less the cached ones, and ``usage.completion_tokens``."""
        prompt, completion = usage_counts(body, "prompt_tokens", "completion_tokens")
        cached, _ = self.cache_counts(body)
        if prompt is not None and cached is not None:
            prompt = max(0, prompt - cached)
        return prompt, completion

    def cache_counts(self, body: dict[str, Any]) -> tuple[int | None, int | None]:
        """``usage.prompt_tokens_details.cached_tokens`` (counted in ``prompt_tokens``); the
        API bills no cache writes."""
        usage = body.get("usage")
        details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
        if not isinstance(details, dict):
            return None, None
        cached, _ = usage_counts({"usage": details}, "cached_tokens", "-")
        return cached, None
