"""``python -m memq``: the same as the ``memq`` command."""

from __future__ import annotations

from memq.cli import main

raise SystemExit(main())
