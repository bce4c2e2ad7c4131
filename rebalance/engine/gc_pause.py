"""A scoped pause of Python's cyclic garbage collector around the engine's hot entry points.

Why: a 2000-line scenario keeps ~35,000 new objects alive until it returns (on Python 3.13 even
every Decimal is GC-tracked), so the collector's young and, worse, full collections keep
traversing them - and every other live object of the process - while they cannot be garbage: the
engine builds only trees (no reference cycles), which reference counting frees on its own.
Measured on the 20-scenario 2000-line benchmark this was 20-40% of the engine's time, and it made
the cost grow faster than the portfolio (a bigger scenario tips more full collections).

The pause is process-wide state, so it is taken defensively: only when the collector is enabled,
and it is given back only by the caller that took it. Concurrent callers are safe: a thread that
enters while another holds the pause just runs with it, and the collector is re-enabled when the
holder leaves (the other thread then finishes with collection enabled, which is merely slower).
Cyclic garbage made by other threads meanwhile is collected right after.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic GC for the block if it is enabled; re-enable it afterwards."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
