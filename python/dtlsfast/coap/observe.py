"""Observer bookkeeping for RFC 7641 (Observing Resources in CoAP).

- :class:`ObserverRegistry`: the server's list of observers, keyed by client
  endpoint and token (§4.1), bounded per resource, per remote and in total.
- :class:`ObserveSequence`: 24-bit Observe values, strictly increasing modulo
  2**24 for every notification the server sends (§4.4).
- :func:`is_fresh`: the client's reordering test (§3.4).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field

from dtlsfast.coap.message import Message

#: Observe values are 24-bit (§2) and compared modulo 2**24 (§3.4).
SEQUENCE_MODULUS = 1 << 24
_HALF = 1 << 23

#: A remote endpoint as the server keys it: (attachment id, transport peer).
Remote = tuple[int, Hashable]
#: After this many seconds a notification is fresh whatever its number (§3.4).
REORDER_WINDOW = 128.0


def is_fresh(v1: int, t1: float, v2: int, t2: float) -> bool:
    """Whether notification (v2, received at t2) is newer than (v1, t1) (§3.4)."""
    return (
        (v1 < v2 and v2 - v1 < _HALF) or (v1 > v2 and v1 - v2 > _HALF) or t2 > t1 + REORDER_WINDOW
    )


class ObserveSequence:
    """Server-wide Observe sequence numbers (§4.4)."""

    def __init__(self, start: int = 2) -> None:
        self._value = start % SEQUENCE_MODULUS

    def next(self) -> int:
        self._value = (self._value + 1) % SEQUENCE_MODULUS
        return self._value

    @property
    def value(self) -> int:
        """The last value handed out."""
        return self._value

    @value.setter
    def value(self, value: int) -> None:
        """Go on after ``value`` (a restarted server, past its predecessor's)."""
        self._value = value % SEQUENCE_MODULUS


@dataclass(slots=True, eq=False)
class Observation:
    """One entry in a resource's list of observers (§4.1)."""

    remote: Remote
    token: bytes
    path: str
    request: Message
    #: When the last Confirmable notification was acknowledged (or registration).
    last_con: float
    #: Message ID of the Confirmable notification in flight, if any (§4.5.2).
    pending_mid: int | None = None
    #: Message IDs of recent Non-confirmable notifications, to match a Reset.
    recent_non: list[int] = field(default_factory=list)

    @property
    def key(self) -> tuple[Remote, bytes]:
        return (self.remote, self.token)


class ObserverRegistry:
    """Observers keyed by (remote, token), bounded three ways."""

    def __init__(
        self, *, per_resource: int, per_remote: int, total: int, counters: Counter[str]
    ) -> None:
        self._per_resource = per_resource
        self._per_remote = per_remote
        self._total = total
        self._counters = counters
        self._by_key: dict[tuple[Remote, bytes], Observation] = {}
        self._by_path: dict[str, dict[tuple[Remote, bytes], Observation]] = {}
        self._by_remote: dict[Remote, dict[bytes, Observation]] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, remote: Remote, token: bytes) -> Observation | None:
        return self._by_key.get((remote, token))

    def all(self) -> list[Observation]:
        return list(self._by_key.values())

    def for_path(self, path: str) -> list[Observation]:
        return list(self._by_path.get(path, {}).values())

    def for_remote(self, remote: Remote) -> list[Observation]:
        return list(self._by_remote.get(remote, {}).values())

    def add(self, obs: Observation) -> bool:
        """Add or replace the entry for (remote, token); False when a bound is hit."""
        old = self._by_key.get(obs.key)
        if old is not None:
            self.remove(old)
        elif (
            len(self._by_key) >= self._total
            or len(self._by_path.get(obs.path, ())) >= self._per_resource
            or len(self._by_remote.get(obs.remote, ())) >= self._per_remote
        ):
            self._counters["observers_rejected"] += 1
            return False
        self._by_key[obs.key] = obs
        self._by_path.setdefault(obs.path, {})[obs.key] = obs
        self._by_remote.setdefault(obs.remote, {})[obs.token] = obs
        return True

    def remove(self, obs: Observation) -> bool:
        if self._by_key.get(obs.key) is not obs:
            return False
        del self._by_key[obs.key]
        per_path = self._by_path[obs.path]
        del per_path[obs.key]
        if not per_path:
            del self._by_path[obs.path]
        per_remote = self._by_remote[obs.remote]
        del per_remote[obs.token]
        if not per_remote:
            del self._by_remote[obs.remote]
        return True

    def clear(self) -> None:
        self._by_key.clear()
        self._by_path.clear()
        self._by_remote.clear()


__all__ = [
    "REORDER_WINDOW",
    "SEQUENCE_MODULUS",
    "Observation",
    "ObserveSequence",
    "ObserverRegistry",
    "Remote",
    "is_fresh",
]
