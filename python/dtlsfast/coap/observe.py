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
from dataclasses import dataclass

from dtlsfast.coap.message import Message
from dtlsfast.interning import Interner

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


#: Registering requests without their Message ID and token, one bytes object
#: for all the observers whose requests differ only in those (most of a
#: fleet: the same GET of the same path); bounded, past it a request is kept
#: as its observer's own.
_SHARED_REQUESTS: Interner[bytes] = Interner(1024)


def _shared_request(data: bytes) -> bytes:
    """``data`` (an encoded request) with Message ID 0 and no token, shared."""
    if len(data) < 4:
        return data
    tkl = data[0] & 0x0F
    return _SHARED_REQUESTS(bytes((data[0] & 0xF0, data[1], 0, 0)) + data[4 + tkl :])


@dataclass(slots=True, eq=False)
class Observation:
    """One entry in a resource's list of observers (§4.1).

    A gateway holds one per observing device, so it is small: the registering
    request is kept encoded (``request_data``) without its Message ID and
    token (the token is :attr:`token`), so that observers with the same
    request share one bytes object, rather than as a decoded
    :class:`Message`, and decoded again when needed (:attr:`request`; a
    notification round decodes one per distinct request, see
    :attr:`request_shape`)."""

    remote: Remote
    token: bytes
    path: str
    request_data: bytes
    """The registering request, encoded (RFC 7252 §3), with Message ID 0
    and no token (given with either, they are taken out)."""
    #: When the last Confirmable notification was acknowledged (or registration).
    last_con: float
    #: Message ID of the Confirmable notification in flight, if any (§4.5.2).
    pending_mid: int | None = None

    def __post_init__(self) -> None:
        self.request_data = _shared_request(self.request_data)

    @property
    def key(self) -> tuple[Remote, bytes]:
        """(remote, token): what identifies the observation (§4.1)."""
        return (self.remote, self.token)

    @property
    def request(self) -> Message:
        """The registering request, decoded, with its token (Message ID 0)."""
        message = Message.decode(self.request_data)
        message.token = self.token
        return message

    @property
    def request_shape(self) -> bytes:
        """The request without its header and token (its options and
        payload): equal for observers whose requests differ only in Message
        ID and token, so that they share one rendering."""
        data = self.request_data
        return data[4 + (data[0] & 0x0F) :]


class ObserverRegistry:
    """Observers keyed by (remote, token), bounded three ways.

    Kept small, a gateway holding one per device: by remote (the observation
    itself, or a dict by token for a remote with more than one) and by path
    (a dict of the observations themselves: no key tuple per observer)."""

    def __init__(
        self, *, per_resource: int, per_remote: int, total: int, counters: Counter[str]
    ) -> None:
        self._per_resource = per_resource
        self._per_remote = per_remote
        self._total = total
        self._counters = counters
        self._count = 0
        self._by_path: dict[str, dict[Observation, None]] = {}
        self._by_remote: dict[Remote, Observation | dict[bytes, Observation]] = {}

    def __len__(self) -> int:
        return self._count

    def get(self, remote: Remote, token: bytes) -> Observation | None:
        mine = self._by_remote.get(remote)
        if mine is None:
            return None
        if isinstance(mine, Observation):
            return mine if mine.token == token else None
        return mine.get(token)

    def all(self) -> list[Observation]:
        return [obs for per_path in self._by_path.values() for obs in per_path]

    def for_path(self, path: str) -> list[Observation]:
        return list(self._by_path.get(path, ()))

    def for_remote(self, remote: Remote) -> list[Observation]:
        mine = self._by_remote.get(remote)
        if mine is None:
            return []
        if isinstance(mine, Observation):
            return [mine]
        return list(mine.values())

    def add(self, obs: Observation) -> bool:
        """Add or replace the entry for (remote, token); False when a bound is hit."""
        old = self.get(obs.remote, obs.token)
        if old is not None:
            self.remove(old)
        else:
            mine = self._by_remote.get(obs.remote)
            held = 0 if mine is None else 1 if isinstance(mine, Observation) else len(mine)
            if (
                self._count >= self._total
                or len(self._by_path.get(obs.path, ())) >= self._per_resource
                or held >= self._per_remote
            ):
                self._counters["observers_rejected"] += 1
                return False
        self._count += 1
        self._by_path.setdefault(obs.path, {})[obs] = None
        mine = self._by_remote.get(obs.remote)
        if mine is None:
            self._by_remote[obs.remote] = obs
        elif isinstance(mine, Observation):
            self._by_remote[obs.remote] = {mine.token: mine, obs.token: obs}
        else:
            mine[obs.token] = obs
        return True

    def remove(self, obs: Observation) -> bool:
        if self.get(obs.remote, obs.token) is not obs:
            return False
        self._count -= 1
        per_path = self._by_path[obs.path]
        del per_path[obs]
        if not per_path:
            del self._by_path[obs.path]
        mine = self._by_remote[obs.remote]
        if isinstance(mine, Observation):
            del self._by_remote[obs.remote]
            return True
        del mine[obs.token]
        if len(mine) == 1:
            (self._by_remote[obs.remote],) = mine.values()
        return True

    def clear(self) -> None:
        self._count = 0
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
