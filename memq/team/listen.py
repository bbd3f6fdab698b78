"""The team server's listening address (``MEMQ_TEAM_LISTEN=host:port``), read and judged.

Standard library only: ``memq.config`` checks the setting with it, for every command.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from memq.exceptions import SettingError

DEFAULT_TEAM_PORT: Final = 37780
DEFAULT_TEAM_LISTEN: Final = f"127.0.0.1:{DEFAULT_TEAM_PORT}"
_LOOPBACK_NAMES: Final = frozenset({"localhost"})


def parse_listen(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` (an IPv6 host in brackets: ``[::1]:37780``);
    ``ValueError`` saying what is wrong."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise SettingError("must be host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise SettingError("must put an IPv6 address in brackets: [::1]:port")
    try:
        port = int(port_text)
    except ValueError:
        raise SettingError(f"has no port number after the last ':' ({port_text!r})") from None
    if not 1 <= port <= 65535:
        raise SettingError(f"has port {port}, outside 1..65535")
    if not host or any(c.isspace() for c in host):
        raise SettingError("has no host")
    return host, port


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (127.0.0.0/8, ::1, localhost). A name
    other than localhost is not: what it resolves to may change."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
