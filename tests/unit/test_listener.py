from __future__ import annotations

import socket

import pytest

from memq.exceptions import StartupError
from memq.worker.daemon import bind_listener


class TestListener:
    def test_listens_on_loopback_without_nagle(self) -> None:
        """Accepted connections inherit TCP_NODELAY, so no response waits ~40 ms for the
        client's delayed ACK (uvicorn writes head and body separately)."""
        listener = bind_listener(0)
        try:
            host, port = listener.getsockname()
            assert host == "127.0.0.1"
            with socket.create_connection((host, port)):
                accepted, _ = listener.accept()
                with accepted:
                    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            listener.close()

    def test_a_taken_port_names_itself_and_the_setting(self) -> None:
        """Another program on the port is a StartupError that says how to move."""
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            port = other.getsockname()[1]
            with pytest.raises(StartupError, match=rf"port {port} .*MEMQ_PORT"):
                bind_listener(port)
