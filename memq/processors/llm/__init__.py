"""Processors that ask a language model to write each memory record.

    from memq.processors.llm import AnthropicProcessor

    processor = AnthropicProcessor.from_env()     # MEMQ_MODEL, MEMQ_API_KEY, ... (see below)
    result = await processor.process(message, context)
    await processor.aclose()                      # once, at shutdown

``AnthropicProcessor`` (``MEMQ_PROCESSOR=anthropic``) calls the Anthropic Messages API;
``OpenAIProcessor`` (``MEMQ_PROCESSOR=openai``) calls the OpenAI Chat Completions API or any
server that speaks it (Ollama, llama.cpp) at ``MEMQ_BASE_URL``; ``ClaudeCodeProcessor``
(``MEMQ_PROCESSOR=claude-code``) runs the user's Claude Code CLI in print mode. Each makes one
call per observation worth a record and per summarize message, none for other kinds
(``_asking``), shows a tool call as its ``extract`` record and diff (``compact``), and reports
the call's tokens in the result's ``usage``. Their settings are in
``memq.processors.llm._settings``, what they raise in ``memq.processors.llm._client``, and what
they ask and accept in ``memq.processors.llm.prompts``.
"""

from __future__ import annotations

from memq.processors.llm._anthropic import ANTHROPIC_VERSION, AnthropicProcessor
from memq.processors.llm._asking import AsksAModel
from memq.processors.llm._claude_code import ClaudeCodeProcessor, ClaudeCodeSettings
from memq.processors.llm._client import ModelProcessor, retry_after
from memq.processors.llm._openai import OpenAIProcessor
from memq.processors.llm._settings import ANTHROPIC, OPENAI, LLMSettings, Provider

__all__ = [
    "ANTHROPIC",
    "ANTHROPIC_VERSION",
    "OPENAI",
    "AnthropicProcessor",
    "AsksAModel",
    "ClaudeCodeProcessor",
    "ClaudeCodeSettings",
    "LLMSettings",
    "ModelProcessor",
    "OpenAIProcessor",
    "Provider",
    "retry_after",
]
