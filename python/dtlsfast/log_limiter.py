"""Rate-limited logging: at most one line per source per interval.

A server that logs every unexpected error lets any peer that can trigger one
fill the disk. :class:`LogLimiter` says whether to log for a key (a source
address): once per ``interval`` seconds per key, remembering at most
``capacity`` keys. When every remembered key logged within the interval, a new
key is not logged either, so the whole server writes at most ``capacity``
lines per interval whatever the number of sources; what was held back is
counted in :attr:`suppressed`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class LogLimiter:
    """Decides which log lines to write (see the module docstring)."""

    def __init__(self, interval: float = 60.0, capacity: int = 256) -> None:
        self.interval = interval
        self.capacity = capacity
        self._logged: OrderedDict[Hashable, float] = OrderedDict()
        self.suppressed = 0
        """Lines held back since the start."""

    def __len__(self) -> int:
        return len(self._logged)

    def allow(self, key: Hashable, now: float) -> bool:
        """Whether to log for ``key`` now; if so, it counts as logged."""
        logged = self._logged
        last = logged.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed += 1
            return False
        # Oldest first: forget the keys whose interval is over.
        while logged:
            oldest_key, oldest = next(iter(logged.items()))
            if now - oldest < self.interval:
                break
            del logged[oldest_key]
        if key not in logged and len(logged) >= self.capacity:
            self.suppressed += 1
            return False
        logged[key] = now
        logged.move_to_end(key)
        return True


__all__ = ["LogLimiter"]
