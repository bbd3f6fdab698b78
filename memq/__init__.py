"""memq: a crash-safe memory worker for AI coding assistants.

This module imports nothing on purpose: the hook runs as a fresh process on every tool call and
must not pay for the daemon's dependencies. Each package says what it offers in its own
``__all__``; the few modules shared across them (``env``, ``events``, ``kinds``, ``limits``,
``exceptions``, ``config``) are imported by name.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
