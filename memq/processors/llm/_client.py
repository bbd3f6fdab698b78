"""What the processors calling a model API over HTTP share: one request per call (which
messages make one: ``_asking``), and HTTP failures turned into the processor errors the worker
acts on.

=============================================  ==============================================
The API's answer                               What ``process`` raises
=============================================  ==============================================
2xx with a valid record                        nothing: the record
2xx that is not a valid record                 ``InvalidOutputError`` (with the raw answer)
401, 403                                       ``ProcessorAuthError`` naming the variable to fix
429 saying the quota or spend limit is used    ``ProcessorAuthError``: no retry helps until a
up (OpenAI ``insufficient_quota`` and its      person adds credits or raises the limit
billing codes, Anthropic
``enforced_spend_limit_reached``)
other 429                                      ``TransientProcessorError``, ``retry_after`` from
                                               ``retry-after-ms`` or ``retry-after``
408, 409, 5xx (Anthropic's 529 overloaded)     ``TransientProcessorError`` (``retry_after`` if
                                               the answer said one, else None)
any other status                               ``ModelRequestError`` with the API's error
                                               message
no answer within MEMQ_LLM_TIMEOUT, no          ``TransientProcessorError`` (``retry_after``
connection, a dropped connection               None)
=============================================  ==============================================
"""

from __future__ import annotations

import json
import math
import os
import time
from abc import abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Final, Self

import anyio
import httpx
import structlog

from memq.env import Variable
from memq.exceptions import (
    ModelRequestError,
    ProcessorAuthError,
    TransientProcessorError,
)
from memq.memory.records import ModelUsage
from memq.processors.llm._asking import AsksAModel, batching
from memq.processors.llm._settings import LLMSettings, Provider
from memq.processors.llm.prompts import Prompt, invalid_output

log = structlog.get_logger("memq.processors.llm")

ERROR_BODY_CHARS: Final = 2000  # of an error answer, in the exception's message
_RETRYABLE: Final = frozenset({408, 409, 429})
# Error codes of a 429 that waiting does not fix: the account is out of credit or over a limit.
_QUOTA_CODES: Final = frozenset(
    {
        "insufficient_quota",  # OpenAI (as error.type or error.code)
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
        "enforced_spend_limit_reached",  # Anthropic (error.details.error_code)
    }
)


class ModelProcessor(AsksAModel):
    """A processor that asks a model API to write each record.

    Stateless but for its HTTP client, which is reused across messages and sessions: call
    :meth:`aclose` once at shutdown. Subclasses say how one API is asked (:meth:`build_request`)
    and where its answer's text is (:meth:`answer_text`).
    """

    provider: ClassVar[Provider]
    name: str

    def __init__(self, settings: LLMSettings) -> None:
        if settings.provider != self.provider:
            raise ValueError(
                f"{type(self).__name__} needs {self.provider.name} settings, "
                f"not {settings.provider.name}"
            )
        self.name = self.provider.name
        self.settings = settings
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(settings.timeout))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """A processor configured by the environment (``os.environ`` when ``env`` is None);
        ``SettingError`` names a bad or missing setting."""
        made = cls(LLMSettings.from_env(cls.provider, env))
        made.batch_turns = batching(os.environ if env is None else env)
        return made

    def __repr__(self) -> str:
        settings = self.settings
        return f"{type(self).__name__}(model={settings.model!r}, url={settings.base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()

    @property
    def model(self) -> str:
        """The model asked."""
        return self.settings.model

    async def complete(self, prompt: Prompt) -> str:
        """The model's text answer to ``prompt``; raises the errors in the module's table."""
        text, _ = await self.answer(prompt)
        return text

    async def answer(self, prompt: Prompt) -> tuple[str, ModelUsage]:
        """The model's text answer to ``prompt`` and the tokens it cost, as the API's
        ``usage`` says (0 for what it does not say); raises the errors in the module's
        table."""
        request = self.build_request(prompt)
        started = time.monotonic()
        response = await self._send(request)
        body = _json_object(response)
        text = self.answer_text(body)
        tokens_in, tokens_out = self.token_counts(body)
        cache_read, cache_write = self.cache_counts(body)
        usage = ModelUsage(
            processor=self.name,
            model=self.settings.model,
            input_tokens=tokens_in or 0,
            output_tokens=tokens_out or 0,
            cache_read_tokens=cache_read or 0,
            cache_write_tokens=cache_write or 0,
        )
        log.debug(
            "llm.answered",
            provider=self.name,
            model=self.settings.model,
            status=response.status_code,
            elapsed_ms=round((time.monotonic() - started) * 1000),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
        return text, usage

    def cache_counts(self, body: dict[str, Any]) -> tuple[int | None, int | None]:
        """Tokens read from and written to the prompt cache, where the answer says."""
        return None, None

    @abstractmethod
    def build_request(self, prompt: Prompt) -> httpx.Request:
        """The HTTP request asking the model ``prompt``."""

    @abstractmethod
    def answer_text(self, body: dict[str, Any]) -> str:
        """The model's text in a successful answer; ``InvalidOutputError`` if it has none."""

    @abstractmethod
    def token_counts(self, body: dict[str, Any]) -> tuple[int | None, int | None]:
        """Input (not counting the cache's) and output tokens the answer says it used."""

    @property
    def _label(self) -> str:
        """Who answered, for error messages."""
        return f"{self.provider.display} model {self.settings.model}"

    async def _send(self, request: httpx.Request) -> httpx.Response:
        timeout = self.settings.timeout
        where = f"{request.method} {request.url}"
        try:
            # httpx bounds each phase (connect, each read); this bounds the whole exchange.
            with anyio.fail_after(timeout):
                response = await self._client.send(request)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise TransientProcessorError(
                f"{self.provider.display} did not answer within {timeout:g} s ({where})"
            ) from exc
        except httpx.RequestError as exc:
            raise TransientProcessorError(
                f"the connection to {self.provider.display} failed ({where}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._raise_for_status(response)
        return response

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        display = self.provider.display
        error = _error_object(response)
        detail = f"HTTP {status}: {_error_detail(response, error)}"
        if status in (401, 403):
            raise ProcessorAuthError(
                f"{display} refused the API key ({detail}); {self._key_hint()}"
            )
        if status == 429 and _quota_exhausted(error):
            raise ProcessorAuthError(
                f"{display} refused the request: the account's quota or spend limit is used up "
                f"({detail}); add credits or raise the limit, then resume"
            )
        if status in _RETRYABLE or status >= 500:
            raise TransientProcessorError(
                f"{display} is busy or failing, retry later ({detail})",
                retry_after=retry_after(response.headers),
            )
        raise ModelRequestError(
            f"{display} rejected the request to {response.request.url} ({detail})"
        )

    def _key_hint(self) -> str:
        variable = self.provider.key_variable
        source = self.settings.key_source
        if source is None:
            return f"set MEMQ_API_KEY or {variable}"
        if source == Variable.API_KEY:
            return "fix MEMQ_API_KEY"
        return f"fix {source} (or set MEMQ_API_KEY)"


def retry_after(headers: httpx.Headers, now: datetime | None = None) -> float | None:
    """The delay in seconds an answer asks for: ``retry-after-ms`` (milliseconds) first, then
    ``retry-after`` (seconds or an HTTP date); None when it asks for none or makes no sense."""
    milliseconds = _non_negative(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _non_negative(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _non_negative(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _error_object(response: httpx.Response) -> dict[str, Any] | None:
    """The ``error`` object both APIs put in an error's JSON body, if there is one."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _error_detail(response: httpx.Response, error: dict[str, Any] | None) -> str:
    """The error's type and message, else the body's text."""
    if error is not None:
        kind = error.get("type") or error.get("code")
        message = error.get("message")
        parts = [str(part) for part in (kind, message) if part]
        if parts:
            return _clipped(": ".join(parts))
    return _clipped(response.text.strip()) or "(no body)"


def _quota_exhausted(error: dict[str, Any] | None) -> bool:
    """Whether a 429's error says the account is out of credit or over a spend limit."""
    if error is None:
        return False
    details = error.get("details")
    codes = [error.get("type"), error.get("code")]
    if isinstance(details, dict):
        codes.append(details.get("error_code"))
    return any(isinstance(code, str) and code in _QUOTA_CODES for code in codes)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """A successful answer's body, which both APIs send as a JSON object."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise invalid_output(
            f"the API answered HTTP {response.status_code} with a body that is not JSON",
            response.text,
        ) from None
    if not isinstance(body, dict):
        raise invalid_output("the API answered JSON that is not an object", response.text)
    return body


def usage_counts(
    body: dict[str, Any], input_key: str, output_key: str
) -> tuple[int | None, int | None]:
    """The two token counts under an answer's ``usage`` object, where they are integers."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return _integer(usage.get(input_key)), _integer(usage.get(output_key))


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _clipped(text: str) -> str:
    if len(text) <= ERROR_BODY_CHARS:
        return text
    return f"{text[:ERROR_BODY_CHARS]}[… {len(text) - ERROR_BODY_CHARS} more characters]"
