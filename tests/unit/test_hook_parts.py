from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from memq.exceptions import DaemonUnavailableError
from memq.hooks.client import post_json
from memq.hooks.fit import fit
from memq.privacy import is_skipped, strip_private


class TestPrivacy:
    def test_private_spans_are_removed_everywhere(self) -> None:
        """Every string, however deep, loses its <private> spans (any case, any lines)."""
        payload = {
            "prompt": "a<private>secret</private>b",
            "tool_input": {"lines": ["x <PRIVATE>multi\nline</Private> y", 3, None]},
        }
        assert strip_private(payload) == {
            "prompt": "ab",
            "tool_input": {"lines": ["x  y", 3, None]},
        }

    def test_an_unclosed_tag_hides_the_rest(self) -> None:
        """Failing closed: a forgotten </private> does not leak what follows."""
        assert strip_private("keep <private>never stored") == "keep "

    def test_skipped_tools_match_by_name(self) -> None:
        """Only events of listed tools are skipped."""
        assert is_skipped({"tool_name": "TodoWrite"}, {"TodoWrite"})
        assert not is_skipped({"tool_name": "Bash"}, {"TodoWrite"})
        assert not is_skipped({"hook_event_name": "Stop"}, {"TodoWrite"})


class TestFit:
    def test_a_small_event_is_untouched(self) -> None:
        """Under the limit nothing changes."""
        payload = {"a": "x" * 100}
        fitted, body = fit(payload, 10_000)
        assert fitted == payload
        assert json.loads(body) == payload

    def test_long_strings_are_cut_until_the_event_fits(self) -> None:
        """A 3 MB tool output is shortened, with a note, to fit a 1 MiB limit."""
        payload = {"session_id": "s", "tool_response": {"stdout": "x" * 3_000_000}}
        fitted, body = fit(payload, 1024 * 1024)
        assert len(body) <= 1024 * 1024
        assert fitted["session_id"] == "s"
        assert "more bytes not kept" in fitted["tool_response"]["stdout"]


@pytest.fixture
def server() -> Iterator[tuple[int, list[bytes], list[bytes]]]:
    """A loopback server answering each connection with the next scripted response."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    answers: list[bytes] = []
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += conn.recv(65536)
                received.append(head + b"\r\n\r\n" + body)
                if answers:
                    conn.sendall(answers.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], answers, received
    listener.close()


def call(port: int, timeout: float = 1.0) -> tuple[int, object]:
    return post_json(
        port, "/api/events", "tok", b'{"a":1}', connect_timeout=1, read_timeout=timeout
    )


class TestClient:
    def test_sends_one_request_and_reads_the_json_answer(
        self, server: tuple[int, list[bytes], list[bytes]]
    ) -> None:
        """Method, path, Host, token and body are sent; status and JSON come back."""
        port, answers, received = server
        body = b'{"status":"queued","message_id":7}'
        answers.append(b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert call(port) == (202, {"status": "queued", "message_id": 7})
        request = received[0]
        assert request.startswith(b"POST /api/events HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{port}".encode() in request
        assert b"Authorization: Bearer tok" in request
        assert request.endswith(b'\r\n\r\n{"a":1}')

    def test_a_refused_connection_is_unavailable(self) -> None:
        """Nothing listening: DaemonUnavailableError, at once."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(DaemonUnavailableError, match="connect"):
            call(port)

    def test_a_silent_daemon_times_out(self, server: tuple[int, list[bytes], list[bytes]]) -> None:
        """A daemon that accepts but never answers: DaemonUnavailableError after the timeout."""
        port, _, _ = server
        with pytest.raises(DaemonUnavailableError):
            call(port, timeout=0.2)

    @pytest.mark.parametrize(
        "answer",
        [
            b'HTTP/1.1 202 Accepted\r\nContent-Length: 50\r\n\r\n{"cut":',
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnot",
        ],
    )
    def test_a_broken_answer_is_unavailable(
        self, server: tuple[int, list[bytes], list[bytes]], answer: bytes
    ) -> None:
        """Half an answer, a bad status line or a non-JSON body: the hook falls back."""
        port, answers, _ = server
        answers.append(answer)
        with pytest.raises(DaemonUnavailableError):
            call(port)
