"""The forwarding settings (MEMQ_UPSTREAM, MEMQ_UPSTREAM_KEY_FILE, MEMQ_UPSTREAM_MODE) and
the ``upstream`` part of ``memq status``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memq.cli.status_lines import upstream_lines
from memq.config import SettingError, Settings


class TestUpstreamSettings:
    def test_unset_means_no_forwarding_and_the_key_in_the_home(self, tmp_path: Path) -> None:
        settings = Settings.from_env({"MEMQ_HOME": str(tmp_path)})
        assert settings.upstream == ""
        assert settings.upstream_mode == "both"
        assert settings.upstream_key_path == tmp_path / "upstream.key"

    def test_every_variable_lands_in_its_setting(self, tmp_path: Path) -> None:
        settings = Settings.from_env(
            {
                "MEMQ_UPSTREAM": "https://team.example.com:8443/",
                "MEMQ_UPSTREAM_KEY_FILE": str(tmp_path / "k"),
                "MEMQ_UPSTREAM_MODE": "Forward",
            }
        )
        assert settings.upstream == "https://team.example.com:8443"
        assert settings.upstream_key_path == tmp_path / "k"
        assert settings.upstream_mode == "forward"

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:9000", "http://localhost:1", "http://[::1]:2"]
    )
    def test_plain_http_goes_to_this_machine_only(self, url: str) -> None:
        assert Settings.from_env({"MEMQ_UPSTREAM": url}).upstream == url

    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("http://team.example.com", "must use https"),
            ("ftp://team.example.com", "must be https://host"),
            ("team.example.com", "must be https://host"),
            ("https://alice:pw@team.example.com", "must not hold credentials"),
            ("https://team.example.com/?x=1", "without a query"),
            ("https://team.example.com:port", "is not a URL"),
        ],
    )
    def test_a_url_memq_cannot_use_is_refused(self, url: str, problem: str) -> None:
        with pytest.raises(SettingError, match=problem) as raised:
            Settings.from_env({"MEMQ_UPSTREAM": url})
        assert "MEMQ_UPSTREAM" in str(raised.value)
        assert "pw" not in str(raised.value)

    def test_not_with_a_shared_database(self) -> None:
        env = {
            "MEMQ_UPSTREAM": "https://team.example.com",
            "MEMQ_DATABASE_URL": "postgresql://postgres@127.0.0.1/test",
        }
        with pytest.raises(SettingError, match="laptop's own SQLite database"):
            Settings.from_env(env)

    def test_an_unknown_mode_is_refused(self) -> None:
        with pytest.raises(SettingError, match="MEMQ_UPSTREAM_MODE='both-ways' is not one of"):
            Settings.from_env({"MEMQ_UPSTREAM_MODE": "both-ways"})


def upstream(**changes: Any) -> dict[str, Any]:
    status = {
        "url": "https://team.example.com",
        "mode": "both",
        "machine": "laptop",
        "reachable": True,
        "waiting": 0,
        "oldest_waiting_seconds": None,
        "refused": 0,
        "local_only": 0,
        "forwarded": 12,
        "last_error": None,
        "last_error_seconds_ago": None,
        "paused": False,
        "paused_reason": None,
        "retry_in_seconds": None,
    }
    return {**status, **changes}


class TestStatusLines:
    def test_all_well_is_two_lines(self) -> None:
        assert upstream_lines(upstream()) == [
            "upstream  https://team.example.com (both): reachable",
            "          0 events waiting; 12 forwarded since start",
        ]

    def test_a_server_down_shows_what_waits_and_why(self) -> None:
        lines = upstream_lines(
            upstream(
                reachable=False,
                waiting=30,
                oldest_waiting_seconds=95.0,
                retry_in_seconds=64.0,
                last_error="https://team.example.com answered 503",
                last_error_seconds_ago=3.0,
                refused=2,
                local_only=1,
            )
        )
        assert lines == [
            "upstream  https://team.example.com (both): UNREACHABLE",
            "          30 events waiting, the oldest for 1m35s; 12 forwarded since start",
            "          next attempt in 1m04s",
            "          last error (0m03s ago): https://team.example.com answered 503",
            "          2 events refused by the server",
            "          1 event kept local: no git remote for their directory",
        ]

    def test_a_pause_says_why(self) -> None:
        lines = upstream_lines(upstream(paused=True, paused_reason="key refused: 401"))
        assert "PAUSED    forwarding: key refused: 401" in lines

    def test_with_the_daemon_stopped_it_says_nothing_is_sent(self) -> None:
        lines = upstream_lines(
            upstream(reachable=None, forwarded=None, offline=True, waiting=3, last_error="503")
        )
        assert lines[:2] == [
            "upstream  https://team.example.com (both): nothing is sent while the daemon is"
            " stopped",
            "          3 events waiting",
        ]
        assert "          last error: 503" in lines
