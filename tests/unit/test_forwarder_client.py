"""The team server's intake as the laptop speaks it (``memq.team.upstream_client``), its key
file, and the forwarder's backoff (``memq.team.forwarder.backoff_delay``)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from memq.exceptions import (
    UnsafeFileError,
    UpstreamAuthError,
    UpstreamRefusedError,
    UpstreamUnavailableError,
)
from memq.team.forwarder import ForwardSettings, backoff_delay
from memq.team.upstream_client import EventResult, UpstreamClient, read_key

KEY = "memq_abcdefghijkl_" + "x" * 43
EVENT = {"local_id": 7, "session_id": "claude-code:s", "kind": "observation", "payload": {}}


def client(answer: Any) -> UpstreamClient:
    return UpstreamClient("http://team.test/", transport=httpx.MockTransport(answer))


class TestSend:
    """One batch per request; per-event answers on 200, the whole request's otherwise."""

    async def test_the_request_follows_the_contract(self) -> None:
        seen: list[httpx.Request] = []

        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            results = [
                {"local_id": 7, "status": "accepted", "id": 1},
                {"local_id": 8, "status": "refused", "error": "project out of scope"},
            ]
            return httpx.Response(200, json={"results": results})

        up = client(answer)
        try:
            results = await up.send(KEY, "laptop", [EVENT])
        finally:
            await up.aclose()
        assert results == [
            EventResult(7, "accepted"),
            EventResult(8, "refused", "project out of scope"),
        ]
        (request,) = seen
        assert request.method == "POST"
        assert str(request.url) == "http://team.test/api/team/v1/events"
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert json.loads(request.content) == {"machine": "laptop", "events": [EVENT]}

    @pytest.mark.parametrize(
        ("status", "headers", "error", "retry_after"),
        [
            (401, {}, UpstreamAuthError, None),
            (503, {}, UpstreamUnavailableError, None),
            (500, {}, UpstreamUnavailableError, None),
            (429, {"Retry-After": "42"}, UpstreamUnavailableError, 42.0),
            (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, UpstreamUnavailableError, None),
            (413, {}, UpstreamRefusedError, None),
            (422, {}, UpstreamRefusedError, None),
        ],
    )
    async def test_a_status_for_the_whole_request_raises(
        self,
        status: int,
        headers: dict[str, str],
        error: type[Exception],
        retry_after: float | None,
    ) -> None:
        up = client(lambda _: httpx.Response(status, headers=headers, json={"error": "no"}))
        try:
            with pytest.raises(error, match=f"{status}: no") as raised:
                await up.send(KEY, "laptop", [EVENT])
        finally:
            await up.aclose()
        assert getattr(raised.value, "retry_after", None) == retry_after
        assert KEY not in str(raised.value)

    @pytest.mark.parametrize(
        "body",
        [b"not json", b"{}", b'{"results": [{"local_id": 7, "status": "maybe"}]}'],
    )
    async def test_a_200_that_is_not_the_contracts_answer_is_a_failure_to_retry(
        self, body: bytes
    ) -> None:
        up = client(lambda _: httpx.Response(200, content=body))
        try:
            with pytest.raises(UpstreamUnavailableError, match="answered"):
                await up.send(KEY, "laptop", [EVENT])
        finally:
            await up.aclose()

    async def test_no_connection_is_a_failure_to_retry(self) -> None:
        def answer(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

        up = client(answer)
        try:
            with pytest.raises(UpstreamUnavailableError, match="ConnectError: connection refused"):
                await up.send(KEY, "laptop", [EVENT])
        finally:
            await up.aclose()


class TestKeyFile:
    """Read as the token file is: the user's own regular file, 0600, holding a key."""

    def test_a_key_is_read_and_a_loose_mode_tightened(self, tmp_path: Path) -> None:
        path = tmp_path / "upstream.key"
        path.write_text(KEY + "\n")
        path.chmod(0o644)
        assert read_key(path) == KEY
        assert path.stat().st_mode & 0o777 == 0o600

    def test_a_symlink_is_refused(self, tmp_path: Path) -> None:
        real = tmp_path / "real"
        real.write_text(KEY)
        real.chmod(0o600)
        link = tmp_path / "upstream.key"
        link.symlink_to(real)
        with pytest.raises(UnsafeFileError, match="symbolic link"):
            read_key(link)

    @pytest.mark.parametrize("text", ["", "hunter2\n", "memq_a b\n", "memq_" + "x" * 600])
    def test_a_file_that_holds_no_key_is_refused_without_quoting_it(
        self, tmp_path: Path, text: str
    ) -> None:
        path = tmp_path / "upstream.key"
        path.write_text(text)
        path.chmod(0o600)
        with pytest.raises(UnsafeFileError, match="does not hold a team API key") as raised:
            read_key(path)
        assert "hunter2" not in str(raised.value)

    def test_a_missing_file_is_file_not_found(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            read_key(tmp_path / "upstream.key")

    def test_someone_elses_directory_entry_is_not_followed(self, tmp_path: Path) -> None:
        fifo = tmp_path / "upstream.key"
        os.mkfifo(fifo)
        with pytest.raises(UnsafeFileError, match="not a regular file"):
            read_key(fifo)


class TestBackoff:
    """1 s doubling to 300 s, jittered down by at most half, never under 1 s."""

    SETTINGS = ForwardSettings(key_file=Path("unused"))

    def test_the_waits_double_up_to_five_minutes(self) -> None:
        top = [backoff_delay(n, self.SETTINGS, 0.999999) for n in range(1, 12)]
        assert top == pytest.approx([1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300], rel=1e-5)

    def test_jitter_takes_off_at_most_half_and_never_goes_under_a_second(self) -> None:
        draw = random.Random(3).random
        for attempt in range(1, 40):
            base = min(300.0, 2.0 ** (attempt - 1))
            delay = backoff_delay(attempt, self.SETTINGS, draw())
            assert max(1.0, base / 2) <= delay <= base
        assert backoff_delay(1, self.SETTINGS, 0.0) == 1.0
        assert backoff_delay(100, self.SETTINGS, 0.0) == 150.0
        assert backoff_delay(10**6, self.SETTINGS, 0.5) == 225.0  # no overflow
