"""Processors turn queued hook events into memory records.

from memq.processors import get_processor

processor = get_processor("extract")
result = await processor.process(message, await store.context_for(message.session_id))

``MEMQ_PROCESSOR`` names one of:

- ``extract`` (the default): offline rules, no network;
- ``anthropic``: a Claude model through the Anthropic Messages API;
- ``openai``: a model through the OpenAI Chat Completions API, or a local server speaking it;
- ``claude-code``: the user's own Claude Code CLI in print mode (its login pays).

The model-based ones read their settings from the environment (``memq.processors.llm``) and
hold an HTTP client: close it with ``await processor.aclose()`` at shutdown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from memq.exceptions import UnknownProcessorError
from memq.processors.base import Processor, ProcessResult, SessionContext
from memq.processors.extract import ExtractProcessor
from memq.processors.llm import AnthropicProcessor, ClaudeCodeProcessor, OpenAIProcessor

__all__ = [
    "ExtractProcessor",
    "ProcessResult",
    "Processor",
    "SessionContext",
    "get_processor",
    "processor_names",
]

# The default first: error messages list the names in this order.
_PROCESSORS: Final[MappingProxyType[str, Callable[[Mapping[str, str]], Processor]]] = (
    MappingProxyType(
        {
            "extract": lambda env: ExtractProcessor(),
            "anthropic": AnthropicProcessor.from_env,
            "openai": OpenAIProcessor.from_env,
            "claude-code": ClaudeCodeProcessor.from_env,
        }
    )
)


def get_processor(name: str, env: Mapping[str, str] | None = None) -> Processor:
    """A new processor of the kind ``name``, configured by ``env`` (``os.environ`` when None).

    Raises ``UnknownProcessorError`` for an unknown name (naming the known ones) and
    ``SettingError`` for a model-based processor whose settings are missing or wrong (naming
    the variable to fix).
    """
    factory = _PROCESSORS.get(name)
    if factory is None:
        known = ", ".join(_PROCESSORS)
        raise UnknownProcessorError(f"unknown processor {name!r} (known: {known})")
    return factory(os.environ if env is None else env)


def processor_names() -> tuple[str, ...]:
    """Every processor name ``get_processor`` knows, the default first."""
    return tuple(_PROCESSORS)
