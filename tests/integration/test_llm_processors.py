"""The model-based processors against a real HTTP server that speaks each API from a script:
the requests they send, the records they make, and the errors the worker acts on. The server
and the ``fake``, ``provider`` and ``processor`` fixtures are in ``conftest.py``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from memq.exceptions import (
    InvalidInputError,
    InvalidOutputError,
    ModelRequestError,
    ProcessorAuthError,
    ProcessorError,
    TransientProcessorError,
    UnknownProcessorError,
)
from memq.memory.records import (
    ObservationKind,
    ObservationRecord,
    ProcessResult,
    PromptRecord,
    SessionContext,
)
from memq.processors import get_processor
from memq.processors.llm import (
    ANTHROPIC_VERSION,
    AnthropicProcessor,
    ModelProcessor,
    OpenAIProcessor,
)
from memq.processors.llm.prompts import Prompt
from memq.queue import Message, MessageKind
from tests.helpers.fake_llm import (
    KEY,
    MODELS,
    PROVIDERS,
    FakeLLM,
    Reply,
    anthropic_text,
    base_url,
    closed_port_url,
    error_reply,
    openai_text,
    settings_env,
    text_reply,
)
from tests.helpers.memory import sample

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CONTEXT = SessionContext(
    "claude-code:s1",
    "project",
    prompts=(
        PromptRecord(
            number=1,
            text="Write hello into out.txt",
            id=1,
            message_id=1,
            session_key="claude-code:s1",
            created_at=WHEN,
        ),
    ),
    observations=(
        ObservationRecord(
            kind=ObservationKind.COMMAND,
            title="Ran `echo hello > out.txt`",
            files_modified=("out.txt",),
            tool_name="Bash",
            command="echo hello > out.txt",
            exit_code=0,
        ),
    ),
)
OBSERVATION = {
    "kind": "change",
    "title": "Created out.txt with a greeting",
    "subtitle": "via shell redirect",
    "narrative": "The assistant wrote 'hello' into out.txt with echo.",
    "facts": ["out.txt contains hello"],
    "concepts": ["shell"],
    "files_read": [],
    "files_modified": ["/home/dev/project/out.txt"],
}
SUMMARY = {
    "request": "Write hello into out.txt",
    "investigated": "",
    "learned": "",
    "completed": "Created out.txt containing hello",
    "next_steps": "",
    "files_read": [],
    "files_edited": ["out.txt"],
    "notes": "",
}


def message(kind: MessageKind, payload: Any, message_id: int = 1) -> Message:
    return Message(
        id=message_id,
        session_id="claude-code:c2c6f4bc-4c27-401e-9856-1cd43eb344f3",
        kind=kind,
        payload=payload,
        dedupe_key=None,
        attempts=1,
        created_at=WHEN,
    )


def tool_call() -> Message:
    return message(MessageKind.OBSERVATION, sample("PostToolUse.Bash"))


def stop() -> Message:
    return message(MessageKind.SUMMARIZE, sample("Stop"))


class TestObservations:
    async def test_valid_record(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """The scripted answer becomes the observation; the payload's facts fill the rest."""
        fake.script(text_reply(provider, json.dumps(OBSERVATION)))
        result = await processor.process(tool_call(), CONTEXT)
        record = result.observation
        assert result.summary is None
        assert record is not None
        assert record.kind is ObservationKind.CHANGE
        assert record.title == "Created out.txt with a greeting"
        assert record.subtitle == "via shell redirect"
        assert record.facts == ("out.txt contains hello",)
        assert record.concepts == ("shell",)
        assert record.files_modified == ("out.txt",)
        assert (record.tool_name, record.command, record.exit_code) == (
            "Bash",
            "echo hello > out.txt",
            0,
        )
        assert len(fake.requests) == 1

    async def test_anthropic_request(self, fake: FakeLLM) -> None:
        """POST /v1/messages with x-api-key, anthropic-version, and model, max_tokens, system
        and one user message holding the tool call."""
        processor = AnthropicProcessor.from_env(
            settings_env("anthropic", fake.url, MEMQ_LLM_MAX_TOKENS="1500")
        )
        fake.script(anthropic_text(json.dumps(OBSERVATION)))
        try:
            await processor.process(tool_call(), CONTEXT)
        finally:
            await processor.aclose()
        (seen,) = fake.requests
        assert (seen.method, seen.path) == ("POST", "/v1/messages")
        assert seen.headers["x-api-key"] == KEY
        assert seen.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
        assert seen.headers["content-type"] == "application/json"
        assert "authorization" not in seen.headers
        body = seen.json()
        assert set(body) == {"model", "max_tokens", "system", "messages"}
        assert body["model"] == "claude-test-model"
        assert body["max_tokens"] == 1500
        assert "memory record" in body["system"]
        (user,) = body["messages"]
        assert user["role"] == "user"
        assert "echo hello > out.txt" in user["content"]

    async def test_openai_request(self, fake: FakeLLM) -> None:
        """POST /chat/completions under the base URL with a Bearer key, and model, a system
        and a user message, and max_tokens (a base URL other than OpenAI's own)."""
        processor = OpenAIProcessor.from_env(settings_env("openai", fake.url))
        fake.script(openai_text(json.dumps(OBSERVATION)))
        try:
            await processor.process(tool_call(), CONTEXT)
        finally:
            await processor.aclose()
        (seen,) = fake.requests
        assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
        assert seen.headers["authorization"] == f"Bearer {KEY}"
        assert seen.headers["content-type"] == "application/json"
        assert "x-api-key" not in seen.headers
        body = seen.json()
        assert body["model"] == "gpt-test-model"
        assert body["max_tokens"] == 2048
        assert "max_completion_tokens" not in body
        assert "response_format" not in body
        system, user = body["messages"]
        assert system["role"] == "system"
        assert "memory record" in system["content"]
        assert user["role"] == "user"
        assert "echo hello > out.txt" in user["content"]

    async def test_failure_facts_come_from_the_payload(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """A failed command keeps its exit code from the payload, not from the model."""
        answer = OBSERVATION | {"kind": "command", "exit_code": 0, "command": "true"}
        fake.script(text_reply(provider, f"```json\n{json.dumps(answer)}\n```"))
        payload = sample("PostToolUseFailure")
        result = await processor.process(message(MessageKind.OBSERVATION, payload), CONTEXT)
        assert result.observation is not None
        assert result.observation.exit_code == 3
        assert result.observation.command == "echo failing >&2; exit 3"
        assert result.observation.files_modified == ()

    async def test_replay_gives_the_same_record(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """Given the same answer, a replayed message makes an equal record: no hidden state."""
        fake.script(*[text_reply(provider, json.dumps(OBSERVATION))] * 2)
        first = await processor.process(tool_call(), CONTEXT)
        again = await processor.process(tool_call(), CONTEXT)
        assert first == again
        assert fake.requests[0].body == fake.requests[1].body


class TestSummaries:
    async def test_valid_summary(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """The Stop payload and the context go out; the answer becomes the summary."""
        fake.script(text_reply(provider, json.dumps(SUMMARY)))
        result = await processor.process(stop(), CONTEXT)
        summary = result.summary
        assert result.observation is None
        assert summary is not None
        assert summary.request == "Write hello into out.txt"
        assert summary.completed == "Created out.txt containing hello"
        assert summary.files_edited == ("out.txt",)
        (seen,) = fake.requests
        sent = json.dumps(seen.json())
        assert "Write hello into out.txt" in sent  # the prompt from the context
        assert "Ran `echo hello > out.txt`" in sent  # the observation from the context
        assert "Done. The tool ran" in sent  # the Stop payload's last message

    async def test_summary_validated(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """A summary without its required fields is invalid output."""
        fake.script(text_reply(provider, json.dumps({"learned": "x"})))
        with pytest.raises(InvalidOutputError, match="no 'request' field"):
            await processor.process(stop(), CONTEXT)


class TestOtherKinds:
    @pytest.mark.parametrize(
        "kind", [MessageKind.PROMPT, MessageKind.SESSION_END, MessageKind.EVENT]
    )
    async def test_no_request(
        self, kind: MessageKind, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """Prompts, session ends and other events make no request and no record."""
        result = await processor.process(message(kind, sample("UserPromptSubmit")), CONTEXT)
        assert result == ProcessResult()
        assert fake.requests == []

    async def test_non_object_observation_is_refused_before_asking(
        self, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """A payload with no tool call in it fails the message without a request."""
        with pytest.raises(InvalidInputError, match="must be a JSON object"):
            await processor.process(message(MessageKind.OBSERVATION, ["odd"]), CONTEXT)
        assert fake.requests == []


class TestRateLimits:
    async def test_429_then_success(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """A 429 is transient with the delay from retry-after; the next call succeeds."""
        fake.script(
            error_reply(provider, 429, "rate_limit_error", "slow down", {"retry-after": "7"}),
            text_reply(provider, json.dumps(OBSERVATION)),
        )
        with pytest.raises(TransientProcessorError) as caught:
            await processor.process(tool_call(), CONTEXT)
        assert caught.value.retry_after == 7.0
        assert "429" in str(caught.value)
        assert "slow down" in str(caught.value)
        result = await processor.process(tool_call(), CONTEXT)
        assert result.observation is not None
        assert len(fake.requests) == 2

    async def test_retry_after_ms(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """retry-after-ms is read first when the API sends it."""
        headers = {"retry-after": "2", "retry-after-ms": "1250"}
        fake.script(error_reply(provider, 429, "rate_limit_error", "slow down", headers))
        with pytest.raises(TransientProcessorError) as caught:
            await processor.process(tool_call(), CONTEXT)
        assert caught.value.retry_after == 1.25

    async def test_quota_used_up_pauses(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """A 429 that says the credit or spend limit is used up is no rate limit: waiting
        does not fix it, so it is an auth-class error (the worker pauses)."""
        if provider == "anthropic":
            error = {
                "type": "rate_limit_error",
                "message": "spend limit reached",
                "details": {"error_code": "enforced_spend_limit_reached"},
            }
            body: dict[str, Any] = {"type": "error", "error": error}
        else:
            error = {"message": "You exceeded your current quota", "type": "insufficient_quota"}
            body = {"error": error | {"param": None, "code": "insufficient_quota"}}
        fake.script(Reply(status=429, json=body, headers={"retry-after": "30"}))
        with pytest.raises(ProcessorAuthError, match="quota or spend limit is used up"):
            await processor.process(tool_call(), CONTEXT)

    async def test_429_without_delay(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """A 429 that names no delay leaves the delay to the worker."""
        fake.script(error_reply(provider, 429, "rate_limit_error", "slow down"))
        with pytest.raises(TransientProcessorError) as caught:
            await processor.process(tool_call(), CONTEXT)
        assert caught.value.retry_after is None


class TestServerErrors:
    @pytest.mark.parametrize("status", [500, 502, 503, 529, 408, 409])
    async def test_transient(
        self, status: int, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """Server errors, Anthropic's 529 overloaded, timeouts and conflicts are transient."""
        fake.script(error_reply(provider, status, "overloaded_error", "busy"))
        with pytest.raises(TransientProcessorError) as caught:
            await processor.process(tool_call(), CONTEXT)
        assert caught.value.retry_after is None
        assert f"HTTP {status}" in str(caught.value)

    async def test_slow_answer_times_out(self, provider: str, fake: FakeLLM) -> None:
        """An answer slower than MEMQ_LLM_TIMEOUT is transient, and the wait is bounded."""
        processor = PROVIDERS[provider].from_env(
            settings_env(provider, fake.url, MEMQ_LLM_TIMEOUT="0.3")
        )
        fake.script(Reply(json={"never": "read"}, delay=30))
        started = time.monotonic()
        try:
            with pytest.raises(
                TransientProcessorError, match=r"did not answer within 0\.3 s"
            ) as caught:
                await processor.process(tool_call(), CONTEXT)
        finally:
            await processor.aclose()
        assert caught.value.retry_after is None
        assert time.monotonic() - started < 3

    async def test_no_server(self, provider: str) -> None:
        """Nothing listening at the base URL is transient."""
        url = base_url(provider, closed_port_url())
        processor = PROVIDERS[provider].from_env(
            {"MEMQ_BASE_URL": url, "MEMQ_API_KEY": KEY, "MEMQ_LLM_TIMEOUT": "5"}
        )
        try:
            with pytest.raises(
                TransientProcessorError, match=r"the connection to (Anthropic|OpenAI) failed"
            ):
                await processor.process(tool_call(), CONTEXT)
        finally:
            await processor.aclose()


class TestRefusals:
    @pytest.mark.parametrize(
        ("status", "kind"), [(401, "authentication_error"), (403, "permission_error")]
    )
    async def test_auth(
        self, status: int, kind: str, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """401 and 403 are auth errors naming the provider and the variable to fix."""
        fake.script(error_reply(provider, status, kind, "invalid x-api-key"))
        with pytest.raises(ProcessorAuthError) as caught:
            await processor.process(tool_call(), CONTEXT)
        text = str(caught.value)
        assert ("Anthropic" if provider == "anthropic" else "OpenAI") in text
        assert "fix MEMQ_API_KEY" in text
        assert f"HTTP {status}" in text
        assert "invalid x-api-key" in text
        assert KEY not in text

    async def test_auth_names_the_vendor_variable(self, provider: str, fake: FakeLLM) -> None:
        """With the key from ANTHROPIC_API_KEY / OPENAI_API_KEY, that is the one to fix."""
        variable = f"{provider.upper()}_API_KEY"
        env = {"MEMQ_BASE_URL": base_url(provider, fake.url), variable: "wrong"}
        processor = PROVIDERS[provider].from_env(env)
        fake.script(error_reply(provider, 401, "authentication_error", "invalid key"))
        try:
            with pytest.raises(ProcessorAuthError, match=f"fix {variable}"):
                await processor.process(tool_call(), CONTEXT)
        finally:
            await processor.aclose()

    async def test_other_4xx_fails_the_message(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """An unexpected 4xx is a plain failure of this message with the API's reason."""
        fake.script(error_reply(provider, 400, "invalid_request_error", "prompt is too long"))
        with pytest.raises(ModelRequestError, match=r"HTTP 400.*prompt is too long") as caught:
            await processor.process(tool_call(), CONTEXT)
        assert not isinstance(caught.value, ProcessorError)

    async def test_non_json_error_body(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """An error page that is not JSON is quoted as text."""
        fake.script(Reply(status=404, text="<html>no such route</html>"))
        with pytest.raises(ModelRequestError, match="HTTP 404: <html>no such route</html>"):
            await processor.process(tool_call(), CONTEXT)


class TestInvalidOutput:
    async def test_malformed_answer(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """Prose instead of JSON is invalid output carrying the raw text and the model."""
        fake.script(text_reply(provider, "I think the assistant wrote a file."))
        with pytest.raises(InvalidOutputError) as caught:
            await processor.process(tool_call(), CONTEXT)
        text = str(caught.value)
        assert "I think the assistant wrote a file." in text
        assert MODELS[provider] in text
        assert "not JSON" in text

    async def test_wrong_kind(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """A kind outside the enum is invalid output."""
        fake.script(text_reply(provider, json.dumps(OBSERVATION | {"kind": "mystery"})))
        with pytest.raises(InvalidOutputError, match="'kind' is 'mystery'"):
            await processor.process(tool_call(), CONTEXT)

    async def test_body_not_json(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """A 200 whose body is not JSON at all (a proxy's page) is invalid output."""
        fake.script(Reply(text="<html>gateway says hi</html>"))
        with pytest.raises(InvalidOutputError, match=r"not JSON.*gateway says hi"):
            await processor.process(tool_call(), CONTEXT)

    async def test_answer_without_text(
        self, provider: str, processor: ModelProcessor, fake: FakeLLM
    ) -> None:
        """An answer in the wrong envelope (no content, no choices) is invalid output."""
        fake.script(Reply(json={"id": "x", "content": [], "choices": []}))
        with pytest.raises(InvalidOutputError, match="holds no"):
            await processor.process(tool_call(), CONTEXT)

    async def test_cut_short(self, provider: str, processor: ModelProcessor, fake: FakeLLM) -> None:
        """An answer stopped by the token limit says which setting to raise."""
        partial = json.dumps(OBSERVATION)[:40]
        if provider == "anthropic":
            fake.script(anthropic_text(partial, stop_reason="max_tokens"))
        else:
            fake.script(openai_text(partial, finish_reason="length"))
        with pytest.raises(InvalidOutputError, match="MEMQ_LLM_MAX_TOKENS=2048") as caught:
            await processor.process(tool_call(), CONTEXT)
        assert partial in str(caught.value)


class TestNoKey:
    async def test_custom_base_url_needs_no_key(self, provider: str, fake: FakeLLM) -> None:
        """A local server without a key gets no auth header at all."""
        processor = PROVIDERS[provider].from_env({"MEMQ_BASE_URL": base_url(provider, fake.url)})
        fake.script(text_reply(provider, json.dumps(OBSERVATION)))
        try:
            result = await processor.process(tool_call(), CONTEXT)
        finally:
            await processor.aclose()
        assert result.observation is not None
        (seen,) = fake.requests
        assert "x-api-key" not in seen.headers
        assert "authorization" not in seen.headers


class TestConfiguration:
    def test_get_processor_knows_the_providers(self) -> None:
        """MEMQ_PROCESSOR=anthropic / openai give the processors, with default models."""
        anthropic = get_processor("anthropic", {"ANTHROPIC_API_KEY": KEY})
        openai = get_processor("openai", {"OPENAI_API_KEY": KEY})
        assert isinstance(anthropic, AnthropicProcessor)
        assert isinstance(openai, OpenAIProcessor)
        assert (anthropic.name, openai.name) == ("anthropic", "openai")
        assert anthropic.settings.model == "claude-haiku-4-5"
        assert anthropic.settings.base_url == "https://api.anthropic.com"
        assert openai.settings.model == "gpt-4.1-mini"
        assert openai.settings.base_url == "https://api.openai.com/v1"

    @pytest.mark.parametrize(
        ("name", "variable"), [("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY")]
    )
    def test_official_endpoint_needs_a_key(self, name: str, variable: str) -> None:
        """The daemon refuses to start without a key, saying which variable to set."""
        with pytest.raises(ValueError, match=f"needs an API key: set {variable} or MEMQ_API_KEY"):
            get_processor(name, {})
        with pytest.raises(ValueError, match="needs an API key"):
            get_processor(name, {"MEMQ_API_KEY": "  "})

    def test_memq_variables_win(self) -> None:
        """MEMQ_* settings come before the vendor's own variables."""
        processor = PROVIDERS["anthropic"].from_env(
            {
                "MEMQ_API_KEY": "memq-key",
                "ANTHROPIC_API_KEY": "vendor-key",
                "MEMQ_BASE_URL": "http://proxy.test/",
                "ANTHROPIC_BASE_URL": "http://vendor.test",
                "MEMQ_MODEL": "claude-x",
            }
        )
        settings = processor.settings
        assert (settings.api_key, settings.key_source) == ("memq-key", "MEMQ_API_KEY")
        assert settings.base_url == "http://proxy.test"
        assert settings.model == "claude-x"

    def test_vendor_variables(self) -> None:
        """Without MEMQ_* settings, the vendor's variables are used."""
        processor = PROVIDERS["openai"].from_env(
            {"OPENAI_API_KEY": "vendor-key", "OPENAI_BASE_URL": "http://localhost:11434/v1"}
        )
        settings = processor.settings
        assert (settings.api_key, settings.key_source) == ("vendor-key", "OPENAI_API_KEY")
        assert settings.base_url == "http://localhost:11434/v1"
        assert not settings.official

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            ({"MEMQ_LLM_TIMEOUT": "0"}, "MEMQ_LLM_TIMEOUT=0 must be a finite positive number"),
            ({"MEMQ_LLM_TIMEOUT": "soon"}, "MEMQ_LLM_TIMEOUT='soon' is not a number"),
            ({"MEMQ_LLM_MAX_TOKENS": "10"}, "MEMQ_LLM_MAX_TOKENS=10 is outside 64..65536"),
            ({"MEMQ_BASE_URL": "localhost:8080"}, "MEMQ_BASE_URL='localhost:8080' must start"),
        ],
    )
    def test_bad_settings_name_the_variable(self, env: dict[str, str], message: str) -> None:
        """A bad value is refused naming its variable."""
        with pytest.raises(ValueError, match=message):
            get_processor("openai", {"OPENAI_API_KEY": KEY, **env})

    def test_unknown_processor_lists_the_known_ones(self) -> None:
        """A typo in MEMQ_PROCESSOR lists every processor, the default first."""
        with pytest.raises(UnknownProcessorError, match=r"known: extract, anthropic, openai"):
            get_processor("llm")

    def test_key_stays_out_of_repr(self) -> None:
        """The key is not shown by repr (logs, tracebacks)."""
        processor = get_processor("anthropic", {"ANTHROPIC_API_KEY": KEY})
        assert isinstance(processor, AnthropicProcessor)
        assert KEY not in repr(processor)
        assert KEY not in repr(processor.settings)

    async def test_openai_official_body(self) -> None:
        """OpenAI's own endpoint gets max_completion_tokens and JSON mode."""
        processor = OpenAIProcessor.from_env({"OPENAI_API_KEY": KEY})
        try:
            request = processor.build_request(Prompt(system="s", user="u"))
        finally:
            await processor.aclose()
        assert str(request.url) == "https://api.openai.com/v1/chat/completions"
        body = json.loads(request.content)
        assert body["max_completion_tokens"] == 2048
        assert body["response_format"] == {"type": "json_object"}
        assert "max_tokens" not in body

    async def test_anthropic_official_url(self) -> None:
        """Anthropic's own endpoint is /v1/messages under api.anthropic.com."""
        processor = AnthropicProcessor.from_env({"ANTHROPIC_API_KEY": KEY})
        try:
            request = processor.build_request(Prompt(system="s", user="u"))
        finally:
            await processor.aclose()
        assert str(request.url) == "https://api.anthropic.com/v1/messages"
        assert request.headers["x-api-key"] == KEY
