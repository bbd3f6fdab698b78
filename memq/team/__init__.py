"""Team memory (issue 17): a project's identity across laptops, and the team server's keys.

``identity`` names the repository a working directory belongs to by its git remote (no
subprocess: it may run on the hook's path); ``keys`` makes, lists, revokes and checks the
API keys people and machines use against the team server; ``outbox``, ``forwarder`` and
``upstream_client`` forward a laptop's events to that server; ``server`` (``memq serve
--team``), ``intake``, ``rate_limit`` and ``listen`` are the server's side of that.
"""

from __future__ import annotations

__all__: list[str] = []
