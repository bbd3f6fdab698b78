"""The daemon's garbage collector, set once it runs: no collection pauses under a burst.

With CPython's defaults, a burst of hook events (32 requests in flight, each holding a few
hundred container objects) passed the young generation's threshold every few requests; each
collection promoted what was in flight, and every second or so a full collection walked the
whole heap, start-up included: 10 to 20 ms during which no request was answered, the slowest
one percent of a burst's answers. So, once the daemon runs:

- what start-up built (modules, settings, the app; never garbage) is frozen out of every
  collection (``gc.freeze``), so a full collection walks only what came after;
- the young generation's threshold is ``YOUNG_THRESHOLD``: above what the requests of a burst
  hold at once, so a collection runs when garbage has piled up, not on every burst.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 10_000  # allocations minus deallocations before a young collection


def settle() -> None:
    """Collect what start-up left, freeze the rest, and raise the young threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
