"""The memory backend seam: ``MemoryStore`` is a ``MemoryBackend`` (memq.memory.backend)."""

from __future__ import annotations

import inspect

import pytest

from memq.memory import MemoryBackend, MemoryStore


def as_backend(store: MemoryStore) -> MemoryBackend:
    # mypy checks here that MemoryStore has every member of the protocol, typed alike.
    return store


def protocol_members() -> list[str]:
    """The operations the protocol declares (its own public callables)."""
    return sorted(
        name
        for name, value in vars(MemoryBackend).items()
        if callable(value) and not name.startswith("_")
    )


class TestMemoryStoreIsABackend:
    def test_the_protocol_names_the_operations(self) -> None:
        """The writes the queue runs, the reads, and closing."""
        members = protocol_members()
        assert {"effect", "forget_effect", "context_for", "list_sessions", "close"} <= set(members)
        assert as_backend is not None

    @pytest.mark.parametrize("name", protocol_members())
    def test_each_member_exists_with_the_same_parameters(self, name: str) -> None:
        """Same parameter names, kinds and defaults, and async where the protocol is."""
        declared = getattr(MemoryBackend, name)
        implemented = getattr(MemoryStore, name)
        assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(declared)
        expected = [
            (p.name, p.kind, p.default) for p in inspect.signature(declared).parameters.values()
        ]
        actual = [
            (p.name, p.kind, p.default) for p in inspect.signature(implemented).parameters.values()
        ]
        assert actual == expected
