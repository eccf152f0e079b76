"""One byte budget shared by every handshake reassembler of a server (RFC 6347
§4.2.3 leaves buffering to the implementation; DESIGN.md: budgets are per
source). The pure-Python twin of the Rust ``ReassemblyBudget``.

Each reassembler keeps its own cap besides; the budget bounds their sum
(``limit``) and what the reassemblers of one source (the server names it: the
peer's address prefix) hold together (``per_source``, an eighth of ``limit``
unless given), so that one attacker cannot take the whole budget from genuine
handshakes.
"""

from __future__ import annotations

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.pure._args import uint

_U64 = (1 << 64) - 1


class ReassemblyBudget:
    """Bytes that the reassemblers sharing it may hold, in all and per source."""

    __slots__ = ("_by_source", "_limit", "_per_source", "_refused", "_used")

    def __init__(self, limit: int, per_source: int | None = None) -> None:
        self._limit = uint(limit, "limit", _U64)
        self._per_source = (
            self._limit // 8 if per_source is None else uint(per_source, "per_source", _U64)
        )
        if self._per_source > self._limit:
            raise ConfigurationError(
                f"per_source ({self._per_source}) must not exceed limit ({self._limit})"
            )
        self._used = 0
        self._refused = 0
        #: Bytes held per source; a source holding nothing has no entry.
        self._by_source: dict[bytes, int] = {}

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def per_source(self) -> int:
        return self._per_source

    @property
    def used(self) -> int:
        """Bytes held by all the reassemblers sharing the budget."""
        return self._used

    @property
    def sources(self) -> int:
        """Sources holding bytes."""
        return len(self._by_source)

    @property
    def refused(self) -> int:
        """Fragments dropped because the budget refused them."""
        return self._refused

    def held_by(self, source: bytes) -> int:
        """Bytes held by the reassemblers of ``source``."""
        return self._by_source.get(bytes(source), 0)

    def __repr__(self) -> str:
        return (
            f"<ReassemblyBudget used={self._used} limit={self._limit} "
            f"sources={len(self._by_source)} refused={self._refused}>"
        )

    # What the pure reassembler calls; the Rust budget keeps these in Rust.

    def _allows(self, used: int, source_used: int | None, n: int) -> bool:
        """Whether ``n`` more bytes fit when ``used`` are held in all and
        ``source_used`` by the source (None: no source, the limit alone)."""
        return used + n <= self._limit and (
            source_used is None or source_used + n <= self._per_source
        )

    def _state(self, source: bytes | None) -> tuple[int, int | None]:
        held = None if source is None else self._by_source.get(source, 0)
        return self._used, held

    def _try_take(self, source: bytes | None, n: int) -> bool:
        used, held = self._state(source)
        if not self._allows(used, held, n):
            return False
        self._used += n
        if source is not None and held is not None and n:
            self._by_source[source] = held + n
        return True

    def _give_back(self, source: bytes | None, n: int) -> None:
        self._used = max(0, self._used - n)
        if source is not None and source in self._by_source:
            held = self._by_source[source] - n
            if held > 0:
                self._by_source[source] = held
            else:
                del self._by_source[source]

    def _count_refusal(self) -> None:
        self._refused += 1
