"""How the CLI shows values and checks its arguments: scores, times, help, limits."""

from __future__ import annotations

import argparse
from datetime import UTC, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from memq.cli import arguments, help_layout
from memq.cli.formats import WHEN_WIDTH, score_text, when
from memq.cli.memory_commands import OBSERVATION_KINDS, RECORD_TYPES
from memq.cli.parser import COMMAND_GROUPS, build_parser
from memq.memory.records import ObservationKind, RecordType


class TestScoreText:
    @pytest.mark.parametrize(
        ("score", "text"),
        [
            (2.01e-06, "<0.01"),  # was "2.01e-06": eight characters in a six-wide column
            (0.004999, "<0.01"),
            (0.005, "0.01"),
            (1.0, "1.00"),
            (5.3712, "5.37"),
            (999.99, "999.99"),
            (999.996, "1000"),  # two decimals would make seven characters
            (123456.7, "123457"),
            (999999.4, "999999"),
            (12_345_678.0, "1e+07"),
            (0.0, "0.00"),
            (-1.5, "0.00"),
            (float("nan"), "0.00"),
            (float("inf"), "inf"),
        ],
    )
    def test_fits_six_columns(self, score: float, text: str) -> None:
        """Every score is at most six characters, so the table's columns stay aligned."""
        assert score_text(score) == text
        assert len(text) <= 6


class TestWhen:
    ISO = "2025-01-31T12:00:00.250Z"

    def test_local_time_names_its_offset(self) -> None:
        """Local time with the zone's offset from UTC, half hours included."""
        india = timezone(timedelta(hours=5, minutes=30))
        assert when(self.ISO, zone=india) == "2025-01-31 17:30 +05:30"
        west = timezone(-timedelta(hours=3))
        assert when(self.ISO, zone=west) == "2025-01-31 09:00 -03:00"

    def test_daylight_saving_time_changes_the_offset(self) -> None:
        """The offset is the one in force at that time, not today's."""
        berlin = ZoneInfo("Europe/Berlin")
        assert when(self.ISO, zone=berlin) == "2025-01-31 13:00 +01:00"
        assert when("2025-07-01T12:00:00Z", zone=berlin) == "2025-07-01 14:00 +02:00"

    def test_utc_says_so(self) -> None:
        """--utc shows UTC, labelled, whatever the local zone."""
        assert when(self.ISO, utc=True) == "2025-01-31 12:00 UTC"
        assert when("2025-01-31T13:00:00+01:00", utc=True) == "2025-01-31 12:00 UTC"

    def test_a_time_without_zone_is_utc(self) -> None:
        assert when("2025-01-31T12:00:00", zone=UTC) == "2025-01-31 12:00 +00:00"

    def test_fits_the_column(self) -> None:
        assert len(when(self.ISO, zone=ZoneInfo("America/St_Johns"))) == WHEN_WIDTH
        assert len(when(self.ISO, utc=True)) <= WHEN_WIDTH


class TestHelp:
    @pytest.mark.parametrize("columns", [60, 80, 120])
    def test_top_level_help_fits_the_terminal(
        self, columns: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No line is wider than the terminal, and every command is listed on its own line
        with its help beside it, in one aligned column."""
        monkeypatch.setenv("COLUMNS", str(columns))
        text = build_parser().format_help()
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= min(columns, help_layout.MAX_HELP_WIDTH) - 2
        parser = build_parser()
        subparsers = next(
            action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
        )
        columns_of_help = set()
        for name in subparsers.choices:
            listed = [line for line in lines if line.startswith(f"  {name} ")]
            assert len(listed) == 1, name  # on one line of its own, its help beside it
            line = listed[0]
            columns_of_help.add(len(line) - len(line[len(name) + 2 :].lstrip()))
        assert len(columns_of_help) == 1  # "uninstall" no longer pushes its help down a line

    def test_every_command_is_in_a_group(self) -> None:
        """The groups name every command memq has (a new one lands under "more")."""
        grouped = {name for _, names in COMMAND_GROUPS for name in names}
        parser = build_parser()
        subparsers = next(
            action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
        )
        assert set(subparsers.choices) - grouped <= {"mcp", "open", "repair"}

    def test_a_command_without_group_is_listed_under_more(self) -> None:
        text = help_layout.command_list(
            [("search", "find things"), ("brandnew", "does new things")],
            [("memory", ("search",))],
            width=78,
        )
        assert text.splitlines() == [
            "memory:",
            "  search    find things",
            "",
            "more:",
            "  brandnew  does new things",
        ]


class TestArgumentTypes:
    def test_whole_number_names_the_bound(self) -> None:
        parse = arguments.whole_number(1, 100)
        assert parse("7") == 7
        with pytest.raises(argparse.ArgumentTypeError, match="at least 1, not 0"):
            parse("0")
        with pytest.raises(argparse.ArgumentTypeError, match="at most 100, not 101"):
            parse("101")
        with pytest.raises(argparse.ArgumentTypeError, match="whole number, not 'x'"):
            parse("x")

    @pytest.mark.parametrize("text", ["nan", "inf", "-inf", "high"])
    def test_number_is_finite(self, text: str) -> None:
        with pytest.raises(argparse.ArgumentTypeError):
            arguments.number(text)

    def test_iso_time(self) -> None:
        assert arguments.iso_time("2025-01-31") == "2025-01-31"
        with pytest.raises(argparse.ArgumentTypeError, match="ISO-8601"):
            arguments.iso_time("yesterday")


class TestSameLimitsAsTheApi:
    def test_limits_and_choices_match_the_daemon(self) -> None:
        """The CLI checks arguments against the API's own limits and names (a direct read
        without the daemon must refuse what the daemon would)."""
        assert set(OBSERVATION_KINDS) == {kind.value for kind in ObservationKind}
        assert set(RECORD_TYPES) == {record_type.value for record_type in RecordType}
