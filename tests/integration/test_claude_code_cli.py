"""``MEMQ_PROCESSOR=claude-code`` against a stand-in ``claude`` (a real executable the test
writes, answering as ``claude -p --output-format json`` does): the command line, the
environment (``MEMQ_DISABLED=1``, no nested-session variables), the prompt on stdin, the usage
read from the result, and every failure mapped to what the worker acts on. The real CLI is
run by ``tests/e2e/test_claude_code_processor.py``."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from memq.exceptions import (
    InvalidOutputError,
    ModelRequestError,
    ProcessorAuthError,
    SettingError,
    TransientProcessorError,
)
from memq.memory.records import SessionContext
from memq.processors import get_processor
from memq.processors.llm import ClaudeCodeProcessor
from memq.queue import Message, MessageKind
from tests.helpers.memory import sample

RECORD = {"kind": "command", "title": "Ran the tests", "facts": []}
CONTEXT = SessionContext("claude-code:s1", None)


def result(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": text,
        "session_id": "x",
        "usage": {"input_tokens": 11, "output_tokens": 7},
        "modelUsage": {
            "claude-haiku-4-5-20251001": {
                "inputTokens": 900,
                "outputTokens": 60,
                "cacheReadInputTokens": 4000,
                "cacheCreationInputTokens": 300,
            }
        },
        **extra,
    }


def fake_cli(tmp_path: Path, *, out: str, code: int = 0, sleep: float = 0.0) -> Path:
    """An executable ``claude`` that records its arguments, environment and stdin in
    ``seen.json``, then prints ``out`` and exits ``code`` (after ``sleep`` seconds)."""
    script = tmp_path / "bin" / "claude"
    script.parent.mkdir(exist_ok=True)
    seen = tmp_path / "seen.json"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys, time\n"
        "stdin = sys.stdin.read()\n"
        f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ), 'stdin': stdin,"
        f" 'cwd': os.getcwd(), 'pid': os.getpid()}}, open({str(seen)!r}, 'w'))\n"
        f"time.sleep({sleep})\n"
        f"sys.stdout.write({out!r})\n"
        f"sys.exit({code})\n"
    )
    script.chmod(0o755)
    return script


def seen(tmp_path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((tmp_path / "seen.json").read_text())
    return loaded


def processor(tmp_path: Path, script: Path, **extra: str) -> ClaudeCodeProcessor:
    env = {
        "PATH": os.environ["PATH"],
        "MEMQ_HOME": str(tmp_path / "memq-home"),
        "MEMQ_CLAUDE_BIN": str(script),
        "CLAUDECODE": "1",  # the daemon was started from inside a Claude Code session
        **extra,
    }
    made = get_processor("claude-code", env)
    assert isinstance(made, ClaudeCodeProcessor)
    return made


def observation() -> Message:
    return Message(
        id=7,
        session_id="claude-code:s1",
        kind=MessageKind.OBSERVATION,
        payload=sample("PostToolUse.Bash"),
        dedupe_key=None,
        attempts=1,
        created_at=datetime(2026, 12, 4, tzinfo=UTC),
    )


class TestRun:
    async def test_the_record_and_its_usage(self, tmp_path: Path) -> None:
        script = fake_cli(tmp_path, out=json.dumps(result(json.dumps(RECORD))))
        made = processor(tmp_path, script)
        got = await made.process(observation(), CONTEXT)
        assert got.observation is not None
        assert got.observation.title == "Ran the tests"
        assert got.usage is not None
        usage = got.usage
        assert (usage.processor, usage.model) == ("claude-code", "claude-haiku-4-5-20251001")
        assert (usage.input_tokens, usage.output_tokens) == (900, 60)
        assert (usage.cache_read_tokens, usage.cache_write_tokens) == (4000, 300)

    async def test_print_mode_no_tools_small_model_prompt_on_stdin_hooks_off(
        self, tmp_path: Path
    ) -> None:
        script = fake_cli(tmp_path, out=json.dumps(result(json.dumps(RECORD))))
        await processor(tmp_path, script).process(observation(), CONTEXT)
        run = seen(tmp_path)
        argv = run["argv"]
        assert argv[:6] == ["-p", "--output-format", "json", "--model", "haiku", "--tools"]
        assert argv[6] == ""
        assert "--strict-mcp-config" in argv
        assert "--no-session-persistence" in argv
        assert "memory record" in argv[argv.index("--system-prompt") + 1]
        assert "echo hello > out.txt" in run["stdin"]  # the tool call, on stdin
        assert run["env"]["MEMQ_DISABLED"] == "1"
        assert "CLAUDECODE" not in run["env"]
        assert run["cwd"] == str(tmp_path / "memq-home" / "claude-code")

    async def test_the_model_setting_is_passed_on(self, tmp_path: Path) -> None:
        script = fake_cli(tmp_path, out=json.dumps(result(json.dumps(RECORD))))
        await processor(tmp_path, script, MEMQ_MODEL="sonnet").process(observation(), CONTEXT)
        argv = seen(tmp_path)["argv"]
        assert argv[argv.index("--model") + 1] == "sonnet"


class TestFailures:
    @pytest.mark.parametrize(
        ("text", "error"),
        [
            ("Invalid API key · Please run /login", ProcessorAuthError),
            ("API Error: 401 authentication_error", ProcessorAuthError),
            ("API Error: 529 Overloaded", TransientProcessorError),
            ("API Error: 429 rate_limit_error", TransientProcessorError),
            ("Something odd happened", ModelRequestError),
        ],
    )
    async def test_an_error_result(self, tmp_path: Path, text: str, error: type[Exception]) -> None:
        body = result(text, is_error=True, subtype="success")
        script = fake_cli(tmp_path, out=json.dumps(body), code=1)
        with pytest.raises(error, match="Claude Code"):
            await processor(tmp_path, script).process(observation(), CONTEXT)

    async def test_no_json_at_all(self, tmp_path: Path) -> None:
        script = fake_cli(tmp_path, out="Error: unknown option\n", code=2)
        with pytest.raises(ModelRequestError, match="unknown option"):
            await processor(tmp_path, script).process(observation(), CONTEXT)

    async def test_an_answer_that_is_no_record(self, tmp_path: Path) -> None:
        script = fake_cli(tmp_path, out=json.dumps(result("I cannot do that")))
        with pytest.raises(InvalidOutputError, match="Claude Code model haiku"):
            await processor(tmp_path, script).process(observation(), CONTEXT)

    async def test_a_run_past_the_timeout_is_killed(self, tmp_path: Path) -> None:
        script = fake_cli(tmp_path, out="{}", sleep=30)
        made = processor(tmp_path, script, MEMQ_LLM_TIMEOUT="1")
        started = time.monotonic()
        with pytest.raises(TransientProcessorError, match="within 1 s"):
            await made.process(observation(), CONTEXT)
        assert time.monotonic() - started < 10
        # Killed and reaped: not even a zombie is left in the process table.
        with pytest.raises(ProcessLookupError):
            os.kill(seen(tmp_path)["pid"], 0)

    def test_no_cli_is_a_setting_error_naming_the_fix(self, tmp_path: Path) -> None:
        with pytest.raises(SettingError, match="MEMQ_CLAUDE_BIN"):
            get_processor(
                "claude-code",
                {"PATH": str(tmp_path), "MEMQ_CLAUDE_BIN": str(tmp_path / "nowhere")},
            )
        with pytest.raises(SettingError, match="npm install"):
            get_processor("claude-code", {"PATH": str(tmp_path)})
