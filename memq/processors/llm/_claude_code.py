"""``MEMQ_PROCESSOR=claude-code``: the records written by the user's own Claude Code CLI, so
its login (a subscription, or whatever key it is set up with) pays, and memq needs no API key.

Each call runs ``claude -p`` (print mode) with the prompt on stdin and::

    --output-format json        one JSON result: the text, the usage, the models used
    --model haiku               a small model (MEMQ_MODEL names another)
    --tools ""                  no tools: the model only writes
    --system-prompt TEXT        memq's instructions instead of Claude Code's own
    --strict-mcp-config         no MCP server starts (memq mcp among them)
    --no-session-persistence    no transcript of memq's calls in the user's history

in an empty directory of memq's own (``MEMQ_HOME/claude-code``: no project's CLAUDE.md or
settings), with ``MEMQ_DISABLED=1`` in its environment: the hooks memq installed still run
inside that Claude Code, and ``memq hook`` does nothing when it sees it, so memq's own calls
are never remembered and never start another call. The usage in the JSON result (all the
models the run used, cache tokens apart) is recorded like the API's.

MEMQ_CLAUDE_BIN   the ``claude`` command to run. Default: ``claude`` on PATH.
MEMQ_MODEL        the model, by alias (``haiku``, ``sonnet``) or full name. Default ``haiku``.
MEMQ_LLM_TIMEOUT  seconds one run may take, all of it. Default 60.

=============================================  ==============================================
What the run did                               What ``process`` raises
=============================================  ==============================================
exit 0, a JSON result that is a valid record   nothing: the record
a result that is no valid record               ``InvalidOutputError`` (with the text)
an error saying the login or key is refused    ``ProcessorAuthError``: processing pauses
(401, 403, "/login", "API key")
an error saying rate limit or overload         ``TransientProcessorError``
(429, 529, 5xx), no result in time
any other failure                              ``ModelRequestError`` with its message
=============================================  ==============================================
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import structlog
from anyio.abc import Process

from memq.env import DEFAULT_LLM_TIMEOUT, Variable, home_dir, llm_timeout
from memq.exceptions import (
    ModelRequestError,
    ProcessorAuthError,
    SettingError,
    TransientProcessorError,
)
from memq.memory.records import ModelUsage
from memq.processors.llm._asking import AsksAModel, batching
from memq.processors.llm.prompts import Prompt, invalid_output

log = structlog.get_logger("memq.processors.claude_code")

NAME: Final = "claude-code"
DEFAULT_MODEL: Final = "haiku"
DEFAULT_COMMAND: Final = "claude"
WORK_DIR: Final = "claude-code"  # under MEMQ_HOME: where the CLI runs
OUTPUT_CHARS: Final = 4000  # of a failed run's output, in the error's message
# Variables a Claude Code session sets for what it starts: the run is no nested session.
_SESSION_VARIABLES: Final = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SSE_PORT")
_AUTH: Final = re.compile(
    r"\b(401|403)\b|authenticat|unauthori[sz]ed|invalid api key|api key|/login|not logged in"
    r"|log ?in again|oauth token|credit balance",
    re.IGNORECASE,
)
_TRANSIENT: Final = re.compile(
    r"\b(429|500|502|503|504|529)\b|rate.?limit|overloaded|timed? ?out|ECONNRESET"
    r"|ECONNREFUSED|socket hang up|network",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ClaudeCodeSettings:
    """How the CLI is run."""

    command: str  # the resolved path of ``claude``
    model: str = DEFAULT_MODEL
    timeout: float = DEFAULT_LLM_TIMEOUT
    work_dir: str = ""  # where it runs; made on first use
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # its environment

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClaudeCodeSettings:
        """Settings from the environment (``os.environ`` when None); ``SettingError`` when
        the command cannot be found."""
        env = os.environ if env is None else env
        configured = env.get(Variable.CLAUDE_BIN, "").strip()
        found = shutil.which(configured or DEFAULT_COMMAND, path=env.get("PATH"))
        if found is None:
            where = f"{Variable.CLAUDE_BIN}={configured!r}" if configured else "PATH"
            raise SettingError(
                f"processor {NAME} needs the Claude Code CLI: no {configured or DEFAULT_COMMAND}"
                f" found ({where}); install it (npm install -g @anthropic-ai/claude-code) or "
                f"set {Variable.CLAUDE_BIN} to its path"
            )
        child = {k: v for k, v in env.items() if k not in _SESSION_VARIABLES}
        child[Variable.DISABLED] = "1"  # memq's hooks in that Claude Code do nothing
        return cls(
            command=found,
            model=env.get(Variable.MODEL, "").strip() or DEFAULT_MODEL,
            timeout=llm_timeout(env),
            work_dir=os.path.join(home_dir(env), WORK_DIR),
            env=child,
        )


class ClaudeCodeProcessor(AsksAModel):
    """Records written by the user's Claude Code CLI (``MEMQ_PROCESSOR=claude-code``)."""

    name = NAME

    def __init__(self, settings: ClaudeCodeSettings) -> None:
        self.settings = settings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClaudeCodeProcessor:
        """A processor configured by the environment; ``SettingError`` names what is wrong."""
        made = cls(ClaudeCodeSettings.from_env(env))
        made.batch_turns = batching(os.environ if env is None else env)
        return made

    def __repr__(self) -> str:
        return f"ClaudeCodeProcessor(model={self.model!r}, command={self.settings.command!r})"

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def _label(self) -> str:
        return f"Claude Code model {self.settings.model}"

    async def aclose(self) -> None:
        """Nothing is held between runs."""

    def command(self, prompt: Prompt) -> list[str]:
        """The command line of one run (the prompt itself goes on stdin)."""
        return [
            self.settings.command,
            "-p",
            "--output-format",
            "json",
            "--model",
            self.settings.model,
            "--tools",
            "",
            "--system-prompt",
            prompt.system,
            "--strict-mcp-config",
            "--no-session-persistence",
        ]

    async def answer(self, prompt: Prompt) -> tuple[str, ModelUsage]:
        """Run the CLI on ``prompt``; its text and the tokens the run used."""
        out, err, code = await self._run(prompt)
        result = _result(out)
        if result is None or code != 0 or result.get("is_error") or _failed(result):
            raise self._failure(result, out, err, code)
        text = result.get("result")
        if not isinstance(text, str) or not text.strip():
            raise invalid_output("the Claude Code run gave no text", out)
        usage = _usage(result, self.settings.model)
        log.debug(
            "claude_code.answered",
            model=usage.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
        return text, usage

    async def _run(self, prompt: Prompt) -> tuple[str, str, int]:
        settings = self.settings
        await anyio.Path(settings.work_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        process: Process | None = None
        try:
            with anyio.fail_after(settings.timeout):
                process = await anyio.open_process(
                    self.command(prompt),
                    cwd=settings.work_dir,
                    env=dict(settings.env),
                    start_new_session=True,  # its children go with it on a timeout
                )
                out, err = await _communicate(process, prompt.user.encode("utf-8"))
                code = await process.wait()
        except TimeoutError as exc:
            raise TransientProcessorError(
                f"Claude Code did not answer within {settings.timeout:g} s"
            ) from exc
        except OSError as exc:
            raise TransientProcessorError(f"Claude Code could not be run: {exc}") from exc
        finally:
            if process is not None:
                _kill_group(process.pid)
                # Reaped and its pipes closed, even on a timeout or a cancellation: no zombie,
                # no transport left for the garbage collector.
                with anyio.CancelScope(shield=True):
                    await process.aclose()
        return out, err, code

    def _failure(self, result: dict[str, Any] | None, out: str, err: str, code: int) -> Exception:
        said = result.get("result") if result is not None else None
        message = str(said) if isinstance(said, str) and said else (err.strip() or out.strip())
        detail = _clipped(message) or f"exit status {code}, no output"
        if _AUTH.search(message):
            return ProcessorAuthError(
                f"Claude Code refused to run ({detail}); log in with `claude` (or fix its "
                f"API key), then: memq resume"
            )
        if _TRANSIENT.search(message):
            return TransientProcessorError(f"Claude Code is busy or failing ({detail})")
        return ModelRequestError(f"Claude Code failed (exit status {code}): {detail}")


async def _communicate(process: Process, data: bytes) -> tuple[str, str]:
    """Write ``data`` to the process's stdin, close it, and read all of stdout and stderr."""
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    async def drain(name: str, stream: Any) -> None:
        if stream is None:
            return
        async for chunk in stream:
            chunks[name].append(chunk)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(drain, "out", process.stdout)
        tasks.start_soon(drain, "err", process.stderr)
        if process.stdin is not None:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await process.stdin.send(data)
            await process.stdin.aclose()
    return _decoded(chunks["out"]), _decoded(chunks["err"])


def _decoded(parts: list[bytes]) -> str:
    return b"".join(parts).decode("utf-8", "replace")


def _kill_group(pid: int) -> None:
    """The run's process group, whatever is left of it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _result(out: str) -> dict[str, Any] | None:
    """The JSON result ``--output-format json`` prints (the last JSON line, if several)."""
    for line in reversed(out.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    try:
        whole = json.loads(out)
    except ValueError:
        return None
    return whole if isinstance(whole, dict) else None


def _failed(result: dict[str, Any]) -> bool:
    subtype = result.get("subtype")
    return isinstance(subtype, str) and subtype != "success"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(result: dict[str, Any], asked: str) -> ModelUsage:
    """The run's tokens: ``modelUsage`` (every model it used, summed; the model that wrote
    most named), else ``usage``."""
    per_model = result.get("modelUsage")
    if isinstance(per_model, dict) and per_model:
        totals = [0, 0, 0, 0]
        named, most = asked, -1
        for model, counts in per_model.items():
            if not isinstance(counts, dict):
                continue
            keys = ("inputTokens", "outputTokens", "cacheReadInputTokens")
            values = [_count(counts.get(key)) for key in (*keys, "cacheCreationInputTokens")]
            totals = [a + b for a, b in zip(totals, values, strict=True)]
            if values[1] > most:
                named, most = str(model), values[1]
        read, write = totals[2], totals[3]
        return ModelUsage(NAME, named, 1, totals[0], totals[1], read, write)
    usage = result.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return ModelUsage(
        NAME,
        asked,
        1,
        _count(usage.get("input_tokens")),
        _count(usage.get("output_tokens")),
        _count(usage.get("cache_read_input_tokens")),
        _count(usage.get("cache_creation_input_tokens")),
    )


def _clipped(text: str) -> str:
    text = text.strip()
    if len(text) <= OUTPUT_CHARS:
        return text
    return f"{text[:OUTPUT_CHARS]}[… {len(text) - OUTPUT_CHARS} more characters]"
