"""Which model API the model-based processors call, and how: read from the environment.

MEMQ_MODEL           the model's name. Default ``claude-haiku-4-5`` (anthropic),
                     ``gpt-4.1-mini`` (openai).
MEMQ_BASE_URL        the API's root; else ANTHROPIC_BASE_URL or OPENAI_BASE_URL. Default
                     ``https://api.anthropic.com``, ``https://api.openai.com/v1``.
MEMQ_API_KEY         the API key; else ANTHROPIC_API_KEY or OPENAI_API_KEY. Required for the
                     official endpoints, optional for any other base URL.
MEMQ_LLM_TIMEOUT     seconds one request may take, all of it. Default 60.
MEMQ_LLM_MAX_TOKENS  the most tokens the model may answer with (64..65536). Default 2048.

Roots follow each vendor's own convention: Anthropic's has no ``/v1`` (memq adds
``/v1/messages``), OpenAI's has it (memq adds ``/chat/completions``), so a local server is
``MEMQ_BASE_URL=http://localhost:11434/v1`` for Ollama.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from memq.env import (
    DEFAULT_LLM_MAX_TOKENS,
    DEFAULT_LLM_TIMEOUT,
    Variable,
    llm_max_tokens,
    llm_timeout,
)
from memq.exceptions import SettingError


@dataclass(frozen=True, slots=True)
class Provider:
    """One model API memq can call, and the names of its settings."""

    name: str  # what MEMQ_PROCESSOR selects it by
    display: str  # for messages: "Anthropic"
    default_model: str
    official_url: str
    key_variable: str  # the vendor's own variable for the key
    url_variable: str  # the vendor's own variable for the root URL


ANTHROPIC: Final = Provider(
    name="anthropic",
    display="Anthropic",
    default_model="claude-haiku-4-5",
    official_url="https://api.anthropic.com",
    key_variable="ANTHROPIC_API_KEY",
    url_variable="ANTHROPIC_BASE_URL",
)

OPENAI: Final = Provider(
    name="openai",
    display="OpenAI",
    default_model="gpt-4.1-mini",
    official_url="https://api.openai.com/v1",
    key_variable="OPENAI_API_KEY",
    url_variable="OPENAI_BASE_URL",
)


@dataclass(frozen=True, slots=True)
class LLMSettings:
    """Everything a model-based processor needs to call its API."""

    provider: Provider
    model: str
    base_url: str  # without a trailing slash
    api_key: str | None = field(default=None, repr=False)
    key_source: str | None = None  # the variable the key came from, for error messages
    timeout: float = DEFAULT_LLM_TIMEOUT
    max_tokens: int = DEFAULT_LLM_MAX_TOKENS

    @property
    def official(self) -> bool:
        """Whether the requests go to the vendor's own endpoint."""
        return self.base_url == self.provider.official_url

    @classmethod
    def from_env(cls, provider: Provider, env: Mapping[str, str] | None = None) -> LLMSettings:
        """Settings for ``provider`` from the variables in the module's table.

        Raises ``SettingError`` (a ``ValueError``) naming the variable at fault, and when the
        official endpoint would be called without a key.
        """
        env = os.environ if env is None else env
        base_url, url_source = _first(env, Variable.BASE_URL, provider.url_variable)
        base_url = (base_url or provider.official_url).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise SettingError(f"{url_source}={base_url!r} must start with http:// or https://")
        api_key, key_source = _first(env, Variable.API_KEY, provider.key_variable)
        settings = cls(
            provider=provider,
            model=env.get(Variable.MODEL, "").strip() or provider.default_model,
            base_url=base_url,
            api_key=api_key,
            key_source=key_source,
            timeout=llm_timeout(env),
            max_tokens=llm_max_tokens(env),
        )
        if settings.official and api_key is None:
            raise SettingError(
                f"processor {provider.name} needs an API key: set {provider.key_variable} "
                f"or MEMQ_API_KEY in the daemon's environment (or point MEMQ_BASE_URL at a "
                f"server that needs none)"
            )
        return settings


def _first(env: Mapping[str, str], *names: str) -> tuple[str | None, str | None]:
    """The first of the variables ``names`` that holds a non-blank value, and its name."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value, name
    return None, None
