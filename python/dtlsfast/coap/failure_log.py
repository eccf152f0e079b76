"""Rate-limited logging of CoAP handler failures (RFC 7252 §5.9.3: the client
gets 5.00 Internal Server Error; the operator gets one log line).

A request that makes a handler raise can be sent by any peer as often as it
likes: a traceback per request would let it fill the log. :class:`FailureLog`
writes at most one line per resource per ``interval`` seconds, naming the
exception and where it was raised, and the next line says how many failures
went unlogged in between; the full traceback goes to the DEBUG level, as
rarely. It remembers at most ``capacity`` resources (oldest forgotten first).
"""

from __future__ import annotations

import logging
import traceback
from collections import OrderedDict

#: Longest exception text written; the rest is cut (it may carry peer input).
MAX_TEXT = 200


class FailureLog:
    """Decides which handler failures to log, and logs them on one line."""

    def __init__(
        self, logger: logging.Logger, interval: float = 60.0, capacity: int = 1024
    ) -> None:
        self._logger = logger
        self.interval = interval
        self.capacity = capacity
        #: path -> (when it was last logged, failures held back since)
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self.suppressed = 0
        """Failures not logged since the start."""

    def __len__(self) -> int:
        return len(self._last)

    def failed(self, path: str, what: str, now: float, exc: BaseException | None = None) -> bool:
        """Report that the handler of ``path`` failed (``what`` happened,
        ``exc`` was raised); True if a line was written."""
        last = self._last.get(path)
        if last is not None and now - last[0] < self.interval:
            self._last[path] = (last[0], last[1] + 1)
            self.suppressed += 1
            return False
        held_back = 0 if last is None else last[1]
        self._last.pop(path, None)
        self._last[path] = (now, 0)
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)
        where = ""
        if exc is not None:
            text = str(exc)
            if len(text) > MAX_TEXT:
                text = text[:MAX_TEXT] + "..."
            what = f"{what}: {type(exc).__name__}: {text!r}"
            frames = traceback.extract_tb(exc.__traceback__)
            if frames:
                where = f" at {frames[-1].filename}:{frames[-1].lineno}"
        more = (
            f"; {held_back} more failures in the last {now - last[0]:.0f} s were not logged"
            if last is not None and held_back
            else ""
        )
        self._logger.error(
            "CoAP handler for /%s %s%s%s (answered 5.00; at most one line per %.0f s)",
            path,
            what,
            where,
            more,
            self.interval,
        )
        if exc is not None and self._logger.isEnabledFor(logging.DEBUG):
            self._logger.debug("CoAP handler for /%s failed", path, exc_info=exc)
        return True


__all__ = ["FailureLog"]
