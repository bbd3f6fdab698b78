"""memq: a crash-safe memory worker for AI coding assistants.

This module imports nothing on purpose: the hook runs as a fresh process on every tool call and
must not pay for the daemon's dependencies.
"""

from __future__ import annotations

__version__ = "0.1.0"
