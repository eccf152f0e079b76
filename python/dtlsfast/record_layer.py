"""Per-connection record layer: epochs, AEAD state, sequence numbers, replay.

RFC 6347 §4.1 (record layer, epochs), §4.1.2.6 (anti-replay) and §4.1.2.7
(invalid records are dropped and counted, never raised). Header parsing and
record protection run in the record core (Rust by default); this module only
decides which epoch's state applies to a record.

Connection IDs (RFC 9146): once negotiated, every record from epoch 1 on is a
tls12_cid record carrying the CID its receiver chose. ``local_cid`` is the CID
we receive (records without it are dropped from epoch 1 on), ``peer_cid`` the
one we send; an empty CID means the plain RFC 6347 record format in that
direction. Both are fixed per epoch when its keys are installed.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from dtlsfast.exceptions import LocalProtocolError
from dtlsfast.flight import FlightItem
from dtlsfast.handshake.constants import DTLS_1_2

#: ContentType tls12_cid (RFC 9146 §4).
TLS12_CID = 25

#: Records of the next epoch that arrive before the ChangeCipherSpec that opens
#: it (reordering) are held back, up to this many, instead of being lost.
MAX_FUTURE_RECORDS = 8


class _ReadState(NamedTuple):
    """One read epoch. Never changed once installed (the replay window
    object changes, not the state), so a tuple: built without a Python call,
    and epoch 0's is one for all connections (:data:`_PLAINTEXT_READ`)."""

    cipher: Any | None  # RecordCipher of the backend, None for epoch 0
    window: Any | None  # ReplayWindow, None for epoch 0 (see receive())
    cid: bytes = b""  # the CID records of this epoch must carry (RFC 9146)


#: Epoch 0's read state (plaintext, no replay window), shared.
_PLAINTEXT_READ = _ReadState(None, None)


@dataclass(slots=True)
class _WriteState:
    cipher: Any | None
    next_sequence: int = 0
    cid: bytes = b""  # the CID records of this epoch carry (RFC 9146)


def write_overhead(state: _WriteState) -> int:
    """Bytes a record of this write state adds to its payload: the header,
    AEAD expansion, and with a CID the CID and the inner content type."""
    if state.cipher is None:
        return 13
    # A CID in the header and the real type in the DTLSInnerPlaintext.
    cid = len(state.cid) + 1 if state.cid else 0
    return 13 + int(state.cipher.overhead) + cid


def seal_record(
    backend: Any, state: _WriteState, content_type: int, version: int, epoch: int, payload: bytes
) -> bytes:
    """One record of ``epoch`` with the state's next sequence number, which
    advances."""
    seq = state.next_sequence
    # seal/encode raise ConfigurationError past 2**48 - 1: the connection
    # must be closed before then, RFC 6347 §4.1.
    state.next_sequence = seq + 1
    if state.cipher is None:
        return bytes(backend.encode_record(content_type, version, epoch, seq, payload))
    if state.cid:
        return bytes(state.cipher.seal_cid(content_type, version, epoch, seq, state.cid, payload))
    return bytes(state.cipher.seal(content_type, version, epoch, seq, payload))


#: new_counter() is an empty Counter without ``Counter.__init__`` (Python
#: code that only calls ``update()`` with nothing): a quarter of the cost,
#: and each connection makes two. A partial of ``Counter.__new__``, not a
#: function: no Python frame either.
new_counter: Callable[[], Counter[str]] = functools.partial(Counter.__new__, Counter)


class Record(NamedTuple):
    """One record that passed the record layer: authenticated, not replayed.
    A tuple: one is made per record, and a frozen dataclass costs several
    times as much to build."""

    content_type: int
    epoch: int
    sequence_number: int
    payload: bytes


#: Record(...) without the Python-level __new__ of a NamedTuple (one per record).
_tuple_new = tuple.__new__


class RecordLayer:
    """The read and write states of one connection.

    Epoch 0 records are plaintext and have no replay window: duplicates of
    handshake records are harmless (the reassembler ignores old messages) and
    retransmitted flights must still be seen, RFC 6347 §4.2.4.

    A plain class with slots rather than a dataclass: one is built per
    connection, and this ``__init__`` is the only Python call it costs (no
    ``__post_init__``, no default factories).
    """

    __slots__ = (
        "_future",
        "_read",
        "_write",
        "advances",
        "backend",
        "drops",
        "local_cid",
        "newest",
        "peer_cid",
        "read_epoch",
        "replay_window_size",
        "version",
        "write_epoch",
    )

    def __init__(self, backend: Any, replay_window_size: int = 64, version: int = DTLS_1_2) -> None:
        self.backend = backend
        self.replay_window_size = replay_window_size
        self.version = version
        self.read_epoch = 0
        self.write_epoch = 0
        self.drops: Counter[str] = new_counter()
        self.local_cid = b""
        """The CID we receive, for epochs installed from now on (RFC 9146 §3)."""
        self.peer_cid = b""
        """The CID we send, for epochs installed from now on."""
        self.newest = (-1, -1)
        """(epoch, sequence_number) of the newest authenticated record so far."""
        self.advances = 0
        """Authenticated records that were newer than every one before (RFC 9146 §6)."""
        self._read: dict[int, _ReadState] = {0: _PLAINTEXT_READ}
        self._write: dict[int, _WriteState] = {0: _WriteState(None)}
        self._future: list[tuple[int, int, int, int, bytes, bytes]] = []

    # -- key installation -------------------------------------------------

    def install_pending(self, read_cipher: Any, write_cipher: Any) -> None:
        """Prepare the next epoch in both directions with the backend's
        RecordCipher of each (the key block's, as ``derive_keys`` and
        ``key_block`` hand them back for our role)."""
        # _ReadState(...) without the Python-level __new__ of a NamedTuple.
        self._read[self.read_epoch + 1] = _tuple_new(
            _ReadState,
            (read_cipher, self.backend.ReplayWindow(self.replay_window_size), self.local_cid),
        )
        self._write[self.write_epoch + 1] = _WriteState(write_cipher, 0, self.peer_cid)

    @property
    def has_pending_read(self) -> bool:
        return self.read_epoch + 1 in self._read

    def activate_read(self) -> list[Record]:
        """Switch reading to the next epoch (a ChangeCipherSpec arrived).

        Returns the held-back records of that epoch, now opened.
        """
        if not self.has_pending_read:
            raise LocalProtocolError("no pending read keys to activate")
        self.read_epoch += 1
        # The previous epoch stays readable so a retransmitted flight is still
        # recognised; anything older goes.
        for epoch in [e for e in self._read if e < self.read_epoch - 1]:
            del self._read[epoch]
        held, self._future = self._future, []
        out: list[Record] = []
        for content_type, version, epoch, seq, cid, fragment in held:
            rec = self._open_one(content_type, version, epoch, seq, cid, fragment)
            if rec is not None:
                out.append(rec)
        return out

    def activate_write(self) -> None:
        """Switch writing to the next epoch (we sent a ChangeCipherSpec)."""
        if self.write_epoch + 1 not in self._write:
            raise LocalProtocolError("no pending write keys to activate")
        self.write_epoch += 1

    def forget_previous_epochs(self) -> None:
        """Drop epoch 0 read state once the handshake can no longer need it."""
        for epoch in [e for e in self._read if e < self.read_epoch]:
            del self._read[epoch]
        for epoch in [e for e in self._write if e < self.write_epoch]:
            del self._write[epoch]

    @property
    def current_read(self) -> _ReadState:
        """The current read epoch's cipher and replay window (shared, not a copy)."""
        return self._read[self.read_epoch]

    @property
    def current_write(self) -> _WriteState:
        """The current write epoch's cipher and next sequence number (shared:
        whoever seals with the cipher must advance ``next_sequence``)."""
        return self._write[self.write_epoch]

    def install_in_table(self, table: Any, session_id: int) -> tuple[_ReadState, _WriteState]:
        """Copy the current read and write epochs into a session table (the
        fast path) under ``session_id``: keys, replay window and next write
        sequence number (the caller gives the table the epoch's connection
        IDs, if any). This layer must not be used for those epochs afterwards,
        or records would be judged twice and sequence numbers reused; the
        previous epochs are of no use to the table (their records are the
        handshake's). Returns those epochs' states (for their CIDs)."""
        read, write = self._read[self.read_epoch], self._write[self.write_epoch]
        if read.cipher is None or write.cipher is None or read.window is None:
            raise LocalProtocolError("only protected epochs can go to the session table")
        table.install(
            session_id,
            read.cipher,
            self.read_epoch,
            read.window,
            write.cipher,
            self.write_epoch,
            write.next_sequence,
            self.version,
        )
        return read, write

    def export_current(self, scratch: Any, limit: int, address: Any) -> bytes:
        """The current epochs' record state in the session table's export
        layout (rust/session_export.rs), with ``limit`` as the write sequence
        number and ``address`` bound, through ``scratch`` (an empty session
        table of this layer's backend, left empty). CIDs are not part of it:
        the session store keeps them beside it."""
        read, write = self.current_read, self.current_write
        if read.cipher is None or write.cipher is None or read.window is None:
            raise LocalProtocolError("only protected epochs can be exported")
        scratch.install(
            0,
            read.cipher,
            self.read_epoch,
            read.window,
            write.cipher,
            self.write_epoch,
            0,
            self.version,
        )
        try:
            if address is not None:
                scratch.bind_address(0, address, 0.0)
            return bytes(scratch.export_session(0, limit))
        finally:
            scratch.remove(0)

    @property
    def write_overhead(self) -> int:
        """Bytes a record in the current write epoch adds to its payload."""
        return self.overhead_for(self.write_epoch)

    def overhead_for(self, epoch: int) -> int:
        return write_overhead(self._write[epoch])

    # -- output -------------------------------------------------------------

    def seal(self, content_type: int, payload: bytes, epoch: int | None = None) -> bytes:
        """Protect ``payload`` as one record in ``epoch`` (default: current)."""
        if epoch is None:
            epoch = self.write_epoch
        state = self._write.get(epoch)
        if state is None:
            raise LocalProtocolError(f"no write state for epoch {epoch}")
        return seal_record(self.backend, state, content_type, self.version, epoch, payload)

    def pack_flight(self, items: Sequence[FlightItem], mtu: int) -> list[bytes]:
        """Fragment and seal a flight into datagrams of at most ``mtu`` bytes
        in one call of the backend (RFC 6347 §4.2.3, §4.2.4): the layout of
        :func:`dtlsfast.flight.pack_flight`. The write sequence numbers of the
        epochs used advance; on an error none does."""
        states = self._write
        backend, version = self.backend, self.version
        # The writers spelt out for one epoch (a hello flight) and two (the
        # handshake's and the one it installed: renegotiation is refused, so
        # there are never more in practice): no comprehension, no zip.
        count = len(states)
        if count == 1:
            ((e0, s0),) = states.items()
            datagrams, (s0.next_sequence,) = backend.pack_flight(
                items, mtu, version, ((e0, s0.cipher, s0.next_sequence, s0.cid),)
            )
        elif count == 2:
            (e0, s0), (e1, s1) = states.items()
            datagrams, (s0.next_sequence, s1.next_sequence) = backend.pack_flight(
                items,
                mtu,
                version,
                (
                    (e0, s0.cipher, s0.next_sequence, s0.cid),
                    (e1, s1.cipher, s1.next_sequence, s1.cid),
                ),
            )
        else:
            writers = [(epoch, w.cipher, w.next_sequence, w.cid) for epoch, w in states.items()]
            datagrams, sequences = backend.pack_flight(items, mtu, version, writers)
            for state, sequence in zip(states.values(), sequences, strict=True):
                state.next_sequence = sequence
        return datagrams if datagrams.__class__ is list else list(datagrams)

    def next_write_sequence(self, epoch: int) -> int:
        """The sequence number the next record of ``epoch`` gets."""
        return self._write[epoch].next_sequence

    def set_write_sequence(self, epoch: int, sequence_number: int) -> None:
        self._write[epoch].next_sequence = sequence_number

    # -- input --------------------------------------------------------------

    def receive(self, datagram: bytes) -> Iterable[Record]:
        """Open the records of a datagram; drop and count what fails.

        Lazily (a generator) unless every record is plaintext epoch 0:
        handling one record may install the keys the next record in the same
        datagram needs (ClientKeyExchange, ChangeCipherSpec and Finished
        travel together), and once the connection closes the rest is not
        judged. An epoch-0 plaintext record needs nothing but epoch 0 (which
        handling such a record never removes) and judging it changes nothing,
        so a datagram of only those (the handshake's first flights) is
        judged at once.
        """
        # tls12_cid headers are parsed with the length of our own CID
        # (RFC 9146 §4); without one, a type 25 record has an empty CID and is
        # dropped below.
        parsed, consumed, plaintext = self.backend.split_records(datagram, len(self.local_cid))
        if consumed != len(datagram):
            self.drops["malformed"] += 1
        if plaintext and 0 in self._read:
            return [_tuple_new(Record, (r[0], 0, r[3], r[5])) for r in parsed]
        return self._open_records(parsed)

    def _open_records(
        self, parsed: list[tuple[int, int, int, int, bytes, bytes]]
    ) -> Iterator[Record]:
        """The records of ``receive`` one by one, each judged when it is due."""
        read = self._read
        for content_type, version, epoch, seq, cid, fragment in parsed:
            if version >> 8 != 0xFE:
                self.drops["bad_version"] += 1
                continue
            if epoch == 0 and content_type != TLS12_CID and 0 in read:
                # Plaintext epoch 0 (the handshake's first flights): what
                # _open_one would do, without the call.
                yield _tuple_new(Record, (content_type, 0, seq, fragment))
                continue
            if epoch == self.read_epoch + 1 and self.has_pending_read:
                if len(self._future) < MAX_FUTURE_RECORDS:
                    self._future.append((content_type, version, epoch, seq, cid, fragment))
                else:
                    self.drops["future_epoch_overflow"] += 1
                continue
            rec = self._open_one(content_type, version, epoch, seq, cid, fragment)
            if rec is not None:
                yield rec

    def _open_one(
        self, content_type: int, version: int, epoch: int, seq: int, cid: bytes, fragment: bytes
    ) -> Record | None:
        state = self._read.get(epoch)
        if state is None:
            self.drops["bad_epoch"] += 1
            return None
        if state.cipher is None:
            if content_type == TLS12_CID:
                self.drops["bad_cid"] += 1  # no CID record is ever plaintext
                return None
            return Record(content_type, epoch, seq, fragment)
        if (content_type == TLS12_CID) != bool(state.cid) or cid != state.cid:
            # A CID we did not negotiate, another CID, or a record without the
            # CID this epoch requires (RFC 9146 §4).
            self.drops["bad_cid"] += 1
            return None
        if state.window is None or not state.window.check(seq):
            self.drops["replay"] += 1
            return None
        if state.cid:
            opened = state.cipher.open_cid(version, epoch, seq, cid, fragment)
            if opened is None:
                self.drops["bad_auth"] += 1
                return None
            content_type, plaintext = opened
        else:
            plaintext = state.cipher.open_parts(content_type, version, epoch, seq, fragment)
            if plaintext is None:
                self.drops["bad_auth"] += 1
                return None
        state.window.accept(seq)
        if (epoch, seq) > self.newest:
            self.newest = (epoch, seq)
            self.advances += 1
        return _tuple_new(Record, (content_type, epoch, seq, bytes(plaintext)))
