"""The Anthropic Messages API: ``POST {base}/v1/messages``.

The request carries the key in ``x-api-key`` and the API version in ``anthropic-version``; its
body holds ``model``, ``max_tokens``, the instructions in ``system`` and one user message. The
answer's ``content`` is a list of blocks, the text ones ``{"type": "text", "text": ...}``; its
``stop_reason`` is ``max_tokens`` when the answer was cut short and ``refusal`` when the model
declined. Errors come as ``{"type": "error", "error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Final

import httpx

from memq.processors.llm._client import ModelProcessor, usage_counts
from memq.processors.llm._settings import ANTHROPIC, Provider
from memq.processors.llm.prompts import Prompt, invalid_output

ANTHROPIC_VERSION: Final = "2023-06-01"


class AnthropicProcessor(ModelProcessor):
    """Records written by a Claude model through the Anthropic Messages API
    (``MEMQ_PROCESSOR=anthropic``)."""

    provider: ClassVar[Provider] = ANTHROPIC

    def build_request(self, prompt: Prompt) -> httpx.Request:
        """``POST {base}/v1/messages`` with the instructions as ``system``."""
        settings = self.settings
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if settings.api_key is not None:
            headers["x-api-key"] = settings.api_key
        body = {
            "model": settings.model,
            "max_tokens": settings.max_tokens,
            "system": prompt.system,
            "messages": [{"role": "user", "content": prompt.user}],
        }
        return self._client.build_request(
            "POST", f"{settings.base_url}/v1/messages", headers=headers, json=body
        )

    def answer_text(self, body: dict[str, Any]) -> str:
        """The text blocks of ``content``, joined."""
        content = body.get("content")
        blocks = content if isinstance(content, list) else []
        texts = [
            block["text"]
            for block in blocks
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ]
        text = "".join(texts)
        stop_reason = body.get("stop_reason")
        if stop_reason == "max_tokens":
            raise invalid_output(
                f"the answer was cut short at MEMQ_LLM_MAX_TOKENS={self.settings.max_tokens}",
                text,
            )
        if stop_reason == "refusal":
            raise invalid_output("the model refused to answer", text)
        if not texts:
            raise invalid_output("the API's answer holds no text", json.dumps(body))
        return text

    def token_counts(self, body: dict[str, Any]) -> tuple[int | None, int | None]:
        """``usage.input_tokens`` and ``usage.output_tokens``."""
        return usage_counts(body, "input_tokens", "output_tokens")

    def cache_counts(self, body: dict[str, Any]) -> tuple[int | None, int | None]:
        """``usage.cache_read_input_tokens`` and ``usage.cache_creation_input_tokens`` (not
        counted in ``input_tokens``)."""
        return usage_counts(body, "cache_read_input_tokens", "cache_creation_input_tokens")
