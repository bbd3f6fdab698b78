"""Per-session setting names and values: what is accepted, and the errors for the rest."""

from __future__ import annotations

import pytest

from memq.exceptions import InvalidSettingValueError
from memq.worker.session_config import (
    DEFAULT_CONFIG,
    ConfigName,
    SessionConfig,
    config_name,
    parse_value,
)

PROCESSORS = ("extract", "anthropic", "openai")


class TestNames:
    def test_known_names(self) -> None:
        assert [config_name(n) for n in ("processor", "model", "paused")] == list(ConfigName)

    def test_an_unknown_name_lists_the_known_ones(self) -> None:
        with pytest.raises(InvalidSettingValueError, match="known: processor, model, paused"):
            config_name("Paused")


class TestValues:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [(True, True), (False, False), ("yes", True), (" ON ", True), ("1", True),
         ("false", False), ("no", False), ("off", False), ("0", False)],
    )  # fmt: skip
    def test_paused_takes_booleans_and_their_usual_spellings(
        self, raw: object, expected: bool
    ) -> None:
        assert parse_value(ConfigName.PAUSED, raw, PROCESSORS) is expected

    @pytest.mark.parametrize("raw", ["maybe", "", None, 1, 0, [], {}])
    def test_paused_refuses_anything_else(self, raw: object) -> None:
        with pytest.raises(InvalidSettingValueError, match="'paused' must be true or false"):
            parse_value(ConfigName.PAUSED, raw, PROCESSORS)

    def test_processor_must_be_known(self) -> None:
        assert parse_value(ConfigName.PROCESSOR, " openai ", PROCESSORS) == "openai"
        with pytest.raises(InvalidSettingValueError, match="known: extract, anthropic, openai"):
            parse_value(ConfigName.PROCESSOR, "gpt", PROCESSORS)

    @pytest.mark.parametrize("raw", ["", "   ", None, 5, True, "a\nb", "x" * 201])
    def test_model_must_be_a_short_printable_name(self, raw: object) -> None:
        with pytest.raises(InvalidSettingValueError):
            parse_value(ConfigName.MODEL, raw, PROCESSORS)

    def test_model_is_trimmed(self) -> None:
        assert parse_value(ConfigName.MODEL, " claude-x ", PROCESSORS) == "claude-x"


def test_config_values_and_dict() -> None:
    config = SessionConfig(processor="openai", model=None, paused=True)
    assert config.value(ConfigName.PAUSED) is True
    assert config.to_dict() == {"processor": "openai", "model": None, "paused": True}
    assert DEFAULT_CONFIG.to_dict() == {"processor": None, "model": None, "paused": False}
