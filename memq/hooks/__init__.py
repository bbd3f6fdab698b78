"""The assistant side: the `memq hook` command and installing it into Claude Code.

Standard library only: this runs as a fresh process on every tool call.
"""

from __future__ import annotations
