"""What every processor that asks a model shares, however it reaches the model (an HTTP API,
the Claude Code CLI): which messages cost a call, what the model is shown, and how its answer
becomes a record with the call's tokens."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Final

from memq.env import Variable, env_flag
from memq.exceptions import InvalidOutputError
from memq.memory.records import ModelUsage, ProcessResult, SessionContext
from memq.processors.extract import ExtractProcessor, extract_observation, noise_reason
from memq.processors.llm.batch import batch_prompt, parse_batch
from memq.processors.llm.compact import compact_observation_prompt
from memq.processors.llm.prompts import Prompt, parse_observation, parse_summary, summary_prompt
from memq.queue import Message, MessageKind

_EXTRACT: Final = ExtractProcessor()


class AsksAModel(ABC):
    """A processor that asks a model to write each record: one call per tool call worth a
    record and per summary, none for anything else."""

    name: str
    # MEMQ_BATCH_TURNS: tool calls get extract's record at once, and the model describes them
    # all with the turn's summary, in one call (memq.processors.llm.batch).
    batch_turns: bool = False

    @property
    @abstractmethod
    def model(self) -> str:
        """The model asked."""

    @property
    @abstractmethod
    def _label(self) -> str:
        """Who answered, for error messages: "Anthropic model claude-haiku-4-5"."""

    @abstractmethod
    async def answer(self, prompt: Prompt) -> tuple[str, ModelUsage]:
        """The model's text answer to ``prompt`` and the tokens it cost."""

    async def process(self, message: Message, context: SessionContext) -> ProcessResult:
        """An observation for a tool call, a summary for a summarize request (one call each,
        its tokens in the result's ``usage``), nothing for other kinds and for the tool calls
        ``extract`` finds to be noise (no call)."""
        if self.batch_turns:
            return await self._process_batched(message, context)
        try:
            if message.kind is MessageKind.OBSERVATION:
                # What extract's rules drop as noise (a no-op command, memq's own tools) is
                # not worth a call; the rest is shown as its rules' record and its diff.
                known = extract_observation(message.payload, context, message_id=message.id)
                if noise_reason(known, context, message_id=message.id) is not None:
                    return ProcessResult()
                prompt = compact_observation_prompt(message.payload, context, message_id=message.id)
                answer, usage = await self.answer(prompt)
                return ProcessResult(
                    observation=parse_observation(answer, message.payload), usage=usage
                )
            if message.kind is MessageKind.SUMMARIZE:
                prompt = summary_prompt(message.payload, context)
                answer, usage = await self.answer(prompt)
                return ProcessResult(summary=parse_summary(answer, context), usage=usage)
        except InvalidOutputError as exc:
            raise InvalidOutputError(f"{self._label}: {exc}") from exc
        return ProcessResult()

    async def _process_batched(self, message: Message, context: SessionContext) -> ProcessResult:
        """A tool call: extract's record, no call. A summary: one call for the turn's summary
        and its records, rewritten with the summary's ack."""
        if message.kind is MessageKind.OBSERVATION:
            return await _EXTRACT.process(message, context)
        if message.kind is not MessageKind.SUMMARIZE:
            return ProcessResult()
        try:
            answer, usage = await self.answer(batch_prompt(message.payload, context))
            summary, rewritten = parse_batch(answer, context)
        except InvalidOutputError as exc:
            raise InvalidOutputError(f"{self._label}: {exc}") from exc
        return ProcessResult(summary=summary, usage=usage, rewritten=rewritten)


def batching(env: Mapping[str, str]) -> bool:
    """MEMQ_BATCH_TURNS in ``env``."""
    return env_flag(env, Variable.BATCH_TURNS)
