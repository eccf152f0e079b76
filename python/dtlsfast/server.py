"""asyncio DTLS server: one UDP socket, many peers, one handler per session.

A thin driver of :class:`~dtlsfast.connection.DtlsConnection`. Datagrams from
addresses without a connection go through the stateless
:class:`~dtlsfast.cookie_gate.CookieGate` (RFC 6347 §4.2.1): no per-peer state
exists before a ClientHello carries a valid cookie. A new ClientHello from an
address that has a session (a rebooted device, RFC 6347 §4.2.8) starts a new
handshake that replaces the old session once it completes.

With connection IDs (RFC 9146) each session gets a random CID, unique on this
server; records of type tls12_cid are demultiplexed by CID whatever their
source address, and a session's address moves only on a record that
authenticates and is newer than every record before it (RFC 9146 §6), so a
replayed, older or forged record from elsewhere does not redirect it.
Everything sent to a session (CoAP responses and notifications included) goes
to its current address.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, cast, runtime_checkable

from dtlsfast.auth_filter import AuthFailureFilter
from dtlsfast.backend import load_backend
from dtlsfast.batch_transport import BatchDatagramTransport, open_batch_transport
from dtlsfast.config import (
    Backend,
    ClientAuth,
    DtlsConfiguration,
    PskStore,
    TrustedKey,
    connection_id_length_for,
)
from dtlsfast.connection import DtlsConnection
from dtlsfast.cookie_gate import CookieGate
from dtlsfast.datagram_transport import open_datagram_endpoint
from dtlsfast.events import ApplicationDataReceived, ConnectionClosed, HandshakeCompleted
from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.cookies import CookieJar
from dtlsfast.session import DtlsSession
from dtlsfast.settled_connection import SettledConnection

logger = logging.getLogger("dtlsfast.server")

SessionHandler = Callable[[DtlsSession], Awaitable[None]]


@runtime_checkable
class SessionListener(Protocol):
    """The task-free alternative to a session handler: ``session_opened`` is
    called synchronously for each established session. It typically calls
    :meth:`DtlsSession.set_receiver` and :meth:`DtlsSession.set_close_callback`
    (what the CoAP layer does: a datagram protocol needs no task per peer)."""

    def session_opened(self, session: DtlsSession) -> None: ...


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what one server holds; hitting one drops and counts."""

    max_handshakes: int = 1024
    """Handshakes in progress (after a valid cookie) at once."""
    max_sessions: int = 100_000
    """Established sessions; past it the least recently active are evicted."""
    eviction_batch: float = 1 / 256
    """At the cap, evict this share of ``max_sessions`` more than needed (390
    at 100,000; none below 256), so that a full server looks for its least
    recently active sessions once per batch of newcomers rather than once per
    newcomer: the look is O(sessions), too slow to repeat per handshake."""
    idle_timeout: float = 600.0
    """Seconds without a record from the peer before a session is closed."""
    handshake_lifetime: float = 120.0
    """Seconds a handshake may take in all, whatever its retransmissions."""
    auth_failure_burst: int = 32
    """Records failing authentication tolerated at once from one peer."""
    auth_failure_rate: float = 8.0
    """Failures per second tolerated in the long run; past these a peer's
    datagrams are dropped unopened (see :mod:`dtlsfast.auth_filter`)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.eviction_batch < 1.0:
            raise ConfigurationError(
                f"eviction_batch is a share of max_sessions from 0 to below 1, "
                f"not {self.eviction_batch}"
            )


#: Attempts at drawing a CID not in use before giving up on one for a handshake.
CID_DRAWS = 16


@dataclass(slots=True)
class _Peer:
    server: DtlsServer
    conn: DtlsConnection | SettledConnection
    """The full connection; once the session joins the table, the slim one."""
    started: float
    addr: Any
    """The peer's current address: where everything for it is sent."""
    session: DtlsSession = field(init=False)
    cid: bytes = b""
    """Our CID for this peer, registered in the server's CID table (RFC 9146)."""
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None
    replaces: _Peer | None = None
    counted: bool = field(default=False)
    forgotten: bool = field(default=False)
    auth_filter: AuthFailureFilter | None = None
    """Created at the peer's first authentication failure."""
    table_id: int | None = None
    """The session's id in the server's session table, once it joined it."""

    # The session's endpoint (dtlsfast.session.SessionEndpoint): the peer
    # itself, so that a session costs no bound method or closure.

    def send(self, session: DtlsSession, data: bytes) -> None:
        self.server._send(self, data)

    def flush(self, session: DtlsSession) -> None:
        self.server._flush_session(self)


#: The first byte of a datagram that starts with a tls12_cid record (RFC 9146 §4).
_TLS12_CID = b"\x19"


def _is_epoch0_client_hello(data: bytes) -> bool:
    # type 22, epoch 0, handshake type 1 at offset 13.
    return len(data) > 25 and data[0] == 22 and data[3] == 0 and data[4] == 0 and data[13] == 1


class DtlsServer(asyncio.DatagramProtocol):
    """The server endpoint returned by :func:`serve`."""

    def __init__(
        self,
        handler: SessionHandler | SessionListener,
        config: DtlsConfiguration,
        limits: ServerLimits,
        cookie_secret_lifetime: float,
    ) -> None:
        self._handler = handler
        self.config = config
        self.limits = limits
        self._loop = asyncio.get_running_loop()
        backend = load_backend(config.backend)
        self._gate = CookieGate(
            backend,
            CookieJar(secret_lifetime=cookie_secret_lifetime, now=self._loop.time()),
        )
        self._peers: dict[Any, _Peer] = {}
        #: CID -> peer (RFC 9146), one entry per handshake or session at most,
        #: so bounded like ``_peers``.
        self._by_cid: dict[bytes, _Peer] = {}
        self._cid_length = config.connection_id_length
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = self._loop.create_future()
        self._counters: Counter[str] = Counter()
        self._sweeper: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._established = 0
        # Established sessions' record state (the fast path, DESIGN.md).
        self._table = backend.SessionTable(limits.max_sessions)
        self._table.set_auth_filter(limits.auth_failure_burst, limits.auth_failure_rate)
        self._table_ids = itertools.count(1)
        self._batched = False

    # -- public -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound UDP port (useful after binding port 0)."""
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    @property
    def address(self) -> tuple[str, int]:
        assert self._transport is not None
        sockname = self._transport.get_extra_info("sockname")
        return (str(sockname[0]), int(sockname[1]))

    @property
    def sessions(self) -> list[DtlsSession]:
        return [p.session for p in self._live() if p.conn.established]

    @property
    def counters(self) -> Counter[str]:
        """Handshakes, sessions, drops by reason, cookie exchange, retransmissions.

        With connection IDs: ``connection_ids`` (CIDs in use),
        ``cid_address_updates`` (sessions moved to a new address),
        ``cid_address_kept`` (records from another address that did not move
        their session), ``dropped_unknown_cid``, ``dropped_bad_cid``.

        A snapshot; a counter never incremented reads 0.
        """
        out = Counter(self._counters)
        for name, value in self._gate.counters.items():
            out[f"cookie_{name}"] += value
        live = self._live()
        for peer in live:
            for reason, value in peer.conn.drops.items():
                out[f"dropped_{reason}"] += value
            out["retransmissions"] += peer.conn.counters["retransmissions"]
        out["sessions_open"] = sum(1 for p in live if p.conn.established)
        out["handshakes_in_progress"] = sum(1 for p in live if not p.conn.established)
        out["connection_ids"] = len(self._by_cid)
        out["sessions_in_table"] = len(self._table)
        out["session_table_bytes"] = len(self._table) * self._table.session_footprint
        out["coap_answered_in_table"] = self._table.coap_answered
        # Datagrams too long for the receive buffers (the transport counts them).
        out["dropped_truncated"] += getattr(self._transport, "truncated", 0)
        totals = self._table.totals
        out["dropped_replay"] += totals["replayed"]
        out["dropped_bad_auth"] += totals["bad_auth"]
        out["dropped_auth_throttled"] += totals["throttled"]
        return out

    def close(self) -> None:
        """Send close_notify to every peer and close the socket."""
        for peer in self._live():
            if peer.conn.established:
                peer.conn.close()
                self._flush(peer)
            self._forget(peer)
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._transport is not None:
            self._transport.close()
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> DtlsServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    # -- DatagramProtocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's datagram transports do not all subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._batched = isinstance(transport, BatchDatagramTransport) and hasattr(
            self._table, "serve_batch"
        )
        self._schedule_sweep()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    def error_received(self, exc: Exception) -> None:
        self._counters["socket_errors"] += 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = self._loop.time()
        if self._cid_length and data[:1] == _TLS12_CID:
            self._cid_datagram_received(data, addr, now)
            return
        peer = self._peers.get(addr)
        hello = _is_epoch0_client_hello(data)
        if peer is not None and not hello:
            self._feed_checked(peer, data, now)
            return
        if peer is None and not hello:
            self._counters["dropped_no_session"] += 1
            return
        if peer is None and len(self._peers) - self._established >= self.limits.max_handshakes:
            self._counters["dropped_handshake_limit"] += 1
            return
        # Every epoch-0 ClientHello goes through the stateless cookie check,
        # even from an address that has a connection: a rebooted device
        # (RFC 6347 §4.2.8) or a client that restarted its handshake.
        verdict = self._gate.check(data, addr, now)
        if verdict.reply is not None and self._transport is not None:
            self._transport.sendto(verdict.reply, addr)
        if not verdict.accepted:
            return
        assert verdict.client_hello is not None
        if peer is not None and peer.conn.client_random == verdict.client_hello.random:
            # The same handshake's hello again: a retransmission.
            self._feed(peer, data, now)
            return
        cid = self._new_cid()
        conn = DtlsConnection(self.config, peer=addr, connection_id=cid)
        new = _Peer(self, conn, now, addr, cid or b"")
        new.session = DtlsSession(conn, addr, new)
        if new.cid:
            self._by_cid[new.cid] = new
        if peer is not None and peer.conn.established:
            # The cookie proves the address is reachable; the old session
            # stays aside until the new handshake completes.
            new.replaces = peer
            self._cancel_timer(peer)
        elif peer is not None:
            # An abandoned handshake from the same address: the new one wins.
            self._counters["handshakes_restarted"] += 1
            peer.session._mark_closed(None)
            self._forget(peer)
            new.replaces = peer.replaces
        self._peers[addr] = new
        assert verdict.hello_datagram is not None
        self._feed(new, verdict.hello_datagram, now)

    def _live(self) -> list[_Peer]:
        """Every handshake and session: those with an address entry, and those
        with a CID whose address entry was taken by another client."""
        live = {id(p): p for p in self._peers.values()}
        for peer in self._by_cid.values():
            live.setdefault(id(peer), peer)
        return list(live.values())

    # -- connection IDs (RFC 9146) -------------------------------------------

    def _new_cid(self) -> bytes | None:
        """A random CID not in use on this server; None (no CID offered) if
        ``CID_DRAWS`` draws all collide, which only a tiny CID length allows."""
        if self._cid_length is None or self._cid_length == 0:
            return None if self._cid_length is None else b""
        for _ in range(CID_DRAWS):
            cid = os.urandom(self._cid_length)
            if cid not in self._by_cid:
                return cid
        self._counters["cid_exhausted"] += 1
        return None

    def _release_cid(self, peer: _Peer) -> None:
        if peer.cid and self._by_cid.get(peer.cid) is peer:
            del self._by_cid[peer.cid]
        peer.cid = b""

    def _cid_datagram_received(self, data: bytes, addr: Any, now: float) -> None:
        """A datagram starting with a tls12_cid record: to the session its CID
        names, whatever the source address (RFC 9146 §6)."""
        assert self._cid_length is not None
        peer = self._by_cid.get(data[11 : 11 + self._cid_length])
        if peer is None:
            self._counters["dropped_unknown_cid"] += 1
            return
        if addr == peer.addr:
            self._feed_checked(peer, data, now)
            return
        if self._throttled(peer, now):
            return
        conn = peer.conn
        assert isinstance(conn, DtlsConnection)  # CID sessions never settle into the table
        records = conn.records
        newest_before = records.advances
        failures = peer.conn.drops["bad_auth"]
        peer.conn.receive_datagram(data, now)
        self._charge(peer, failures, now)
        if records.advances > newest_before and not peer.conn.closed and not peer.forgotten:
            # Authenticated and newer than anything before: the peer moved.
            self._move(peer, addr)
            peer.session.last_activity = now
        else:
            self._counters["cid_address_kept"] += 1
        self._flush(peer)

    def _move(self, peer: _Peer, addr: Any) -> None:
        """Make ``addr`` the peer's address, keeping the address table consistent."""
        occupant = self._peers.get(addr)
        if occupant is not None and occupant is not peer:
            self._displace(occupant)
        if self._peers.get(peer.addr) is peer:
            del self._peers[peer.addr]
        logger.info("session with %s moved to %s", _fmt(peer.addr), _fmt(addr))
        self._counters["cid_address_updates"] += 1
        peer.addr = addr
        peer.session.peer_address = addr
        self._peers[addr] = peer

    def _displace(self, occupant: _Peer) -> None:
        """Another session's client now has ``occupant``'s address. A peer with
        a CID only loses its address entry (it is still found by CID and gets
        one again with its next newer record); without a CID it cannot be
        reached any more and is closed, silently."""
        if occupant.conn.connection_id:
            del self._peers[occupant.addr]
            return
        self._counters["sessions_displaced"] += 1
        for gone in (occupant, occupant.replaces):
            if gone is not None:
                gone.session._mark_closed(None)
                self._forget(gone)
        occupant.replaces = None

    # -- internals ---------------------------------------------------------

    def _feed(self, peer: _Peer, data: bytes, now: float) -> None:
        # Batched, the Rust demultiplexer already offered the datagram to the
        # table (serve_batch) and handed it here because the table declined.
        if peer.table_id is not None and not self._batched and self._feed_fast(peer, data, now):
            return
        peer.conn.receive_datagram(data, now)
        peer.session.last_activity = now
        self._flush(peer)
        if peer.table_id is None and not peer.forgotten and peer.conn.settled:
            self._join_table(peer)

    # -- the session table (fast path) ----------------------------------------

    def _feed_fast(self, peer: _Peer, data: bytes, now: float) -> bool:
        """Application data of an established session, opened by the session
        table; False if the datagram needs the connection (alerts, handshake,
        anything unexpected)."""
        result = self._table.open_datagram(peer.table_id, data)
        if result is None:
            return False
        plaintexts, replayed, bad_auth, replies = result
        session = peer.session
        session.last_activity = now
        if replayed:
            peer.conn.count_drop("replay", replayed)
        if bad_auth:
            peer.conn.count_drop("bad_auth", bad_auth)
        if replies and self._transport is not None:
            for reply in replies:
                self._transport.sendto(reply, peer.addr)
        for plaintext in plaintexts:
            session._deliver(plaintext)
        return True

    def serve_batch(self, io: Any) -> int:
        """One batch from the batched transport, demultiplexed in Rust:
        sessions in the table are opened (and published CoAP GETs answered)
        there; Python sees their application data and every other datagram.
        Returns how many datagrams the batch had."""
        if not self._batched:
            items = io.recv()
            for data, addr in items:
                self.datagram_received(data, addr)
            return len(items)
        received, to_python, delivered, unsent = self._table.serve_batch(io, self._loop.time())
        for data, addr in to_python:
            self.datagram_received(data, addr)
        peers = self._peers
        for addr, plaintext in delivered:
            peer = peers.get(addr)
            if peer is not None and peer.table_id is not None:
                peer.session._deliver(plaintext)
        if unsent and self._transport is not None:
            for data, addr in unsent:
                self._transport.sendto(data, addr)
        return int(received)

    def _refresh_activity(self, peer: _Peer) -> None:
        """The Rust demultiplexer keeps the activity time of table sessions."""
        if peer.table_id is not None and self._batched:
            active = self._table.last_active(peer.table_id)
            if active is not None and active > peer.session.last_activity:
                peer.session.last_activity = active

    def publish_response(self, path: str, response: bytes | None) -> None:
        """Have the session table answer a plain Confirmable GET of ``path``
        with ``response`` (code byte, options and payload, as the CoAP layer
        encodes them; None withdraws it). See :mod:`dtlsfast.coap.published`."""
        self._table.publish(path.encode(), response)

    def _join_table(self, peer: _Peer) -> None:
        if len(self._table) >= self._table.capacity:
            self._counters["session_table_full"] += 1
            return
        table_id = next(self._table_ids)
        full = peer.conn
        assert isinstance(full, DtlsConnection)
        self._take_counts(full)
        # The slim connection carries on; the handshake's state goes with `full`.
        peer.conn = peer.session._conn = full.settle_into(self._table, table_id)
        peer.table_id = table_id
        if self._batched:
            # From now on the Rust core demultiplexes this peer's datagrams.
            self._table.bind_address(table_id, peer.addr, self._loop.time())

    def _send(self, peer: _Peer, data: bytes) -> None:
        """Application data from the session: a session in the table has it
        sealed by the table and sent at once, without a queue; others go
        through their connection."""
        conn = peer.conn
        if (
            peer.table_id is not None
            and len(data) <= conn.max_payload
            and self._transport is not None
        ):
            self._transport.sendto(self._table.seal(peer.table_id, 23, data), peer.addr)
            return
        conn.send(data)  # raises the connection's error (size, closed...)
        self._flush_session(peer)

    def _leave_table(self, peer: _Peer) -> None:
        if peer.table_id is not None:
            self._table.remove(peer.table_id)
            peer.table_id = None

    # -- the MAC-error filter (dtlsfast.auth_filter) ---------------------------

    def _feed_checked(self, peer: _Peer, data: bytes, now: float) -> None:
        """Feed a datagram through the peer's MAC-error filter."""
        if self._throttled(peer, now):
            return
        failures = peer.conn.drops["bad_auth"]
        self._feed(peer, data, now)
        self._charge(peer, failures, now)

    def _throttled(self, peer: _Peer, now: float) -> bool:
        guard = peer.auth_filter
        if guard is not None and not guard.allows(now):
            self._counters["dropped_auth_throttled"] += 1
            return True
        return False

    def _charge(self, peer: _Peer, failures_before: int, now: float) -> None:
        failures = peer.conn.drops["bad_auth"] - failures_before
        if failures <= 0:
            return
        guard = peer.auth_filter
        if guard is None:
            limits = self.limits
            guard = AuthFailureFilter(limits.auth_failure_burst, limits.auth_failure_rate, now)
            peer.auth_filter = guard
        guard.charge(failures, now)

    def _flush_session(self, peer: _Peer) -> None:
        if not peer.forgotten:
            self._flush(peer)

    def _flush(self, peer: _Peer) -> None:
        conn = peer.conn
        if self._transport is not None:
            for datagram in conn.datagrams_to_send(self._loop.time()):
                self._transport.sendto(datagram, peer.addr)
        while (event := conn.next_event()) is not None:
            if isinstance(event, ApplicationDataReceived):
                peer.session._deliver(event.data)
            elif isinstance(event, HandshakeCompleted):
                self._on_established(peer, event)
            elif isinstance(event, ConnectionClosed):
                self._on_closed(peer, event)
                return
        self._arm_timer(peer)

    def _on_established(self, peer: _Peer, event: HandshakeCompleted) -> None:
        self._counters["handshakes_completed"] += 1
        self._established += 1
        peer.counted = True
        logger.info(
            "session with %s established (%s, identity %r%s)",
            _fmt(peer.addr),
            event.cipher_suite,
            event.psk_identity,
            ", connection ID" * bool(peer.conn.connection_id),
        )
        if peer.cid and peer.conn.connection_id != peer.cid:
            self._release_cid(peer)  # the client did not offer connection_id
        if peer.replaces is not None:
            old, peer.replaces = peer.replaces, None
            self._counters["sessions_replaced"] += 1
            old.session._mark_closed(None)
            self._forget(old)
            if old.task is not None:
                old.task.cancel()
        self._evict_if_full()
        if isinstance(self._handler, SessionListener):
            self._handler.session_opened(peer.session)
            return
        task = self._loop.create_task(self._run_handler(peer))
        peer.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_handler(self, peer: _Peer) -> None:
        try:
            assert not isinstance(self._handler, SessionListener)
            await self._handler(peer.session)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._counters["handler_errors"] += 1
            logger.exception("session handler for %s raised", _fmt(peer.addr))
        if not peer.session.closed and self._peers.get(peer.addr) is peer:
            await peer.session.close()

    def _on_closed(self, peer: _Peer, event: ConnectionClosed) -> None:
        if peer.conn.counters["handshakes"] == 0:
            self._counters["handshakes_failed"] += 1
            logger.info("handshake with %s failed: %s", _fmt(peer.addr), event.error)
        else:
            logger.info(
                "session with %s closed%s",
                _fmt(peer.addr),
                f": {event.error}" * bool(event.error),
            )
        peer.session._mark_closed(event.error)
        self._forget(peer)
        self._restore_replaced(peer)

    def _restore_replaced(self, peer: _Peer) -> None:
        """The replacement handshake failed: the old session goes on."""
        old = peer.replaces
        if old is not None and not old.forgotten and self._peers.get(old.addr) is None:
            self._peers[old.addr] = old

    def _forget(self, peer: _Peer) -> None:
        peer.forgotten = True
        self._release_cid(peer)
        self._leave_table(peer)
        self._cancel_timer(peer)
        if peer.counted:
            peer.counted = False
            self._established -= 1
        self._take_counts(peer.conn)
        if self._peers.get(peer.addr) is peer:
            del self._peers[peer.addr]

    def _take_counts(self, conn: DtlsConnection | SettledConnection) -> None:
        """Move a connection's drops and retransmissions into the server's counters."""
        for reason, value in conn.drops.items():
            self._counters[f"dropped_{reason}"] += value
        self._counters["retransmissions"] += conn.counters["retransmissions"]
        conn.clear_counts()

    def _cancel_timer(self, peer: _Peer) -> None:
        if peer.timer is not None:
            peer.timer.cancel()
            peer.timer = None

    def _arm_timer(self, peer: _Peer) -> None:
        self._cancel_timer(peer)
        when = peer.conn.get_timer()
        if when is not None:
            peer.timer = self._loop.call_at(when, self._on_timer, peer)

    def _on_timer(self, peer: _Peer) -> None:
        peer.timer = None
        if self._peers.get(peer.addr) is not peer:
            return
        peer.conn.handle_timer(self._loop.time())
        self._flush(peer)

    def _evict_if_full(self) -> None:
        limits = self.limits
        excess = self._established - limits.max_sessions
        if excess <= 0:
            return
        excess += int(limits.max_sessions * limits.eviction_batch)
        established = [p for p in self._live() if p.conn.established]
        for peer in established:
            self._refresh_activity(peer)
        established.sort(key=lambda p: p.session.last_activity)
        for peer in established[:excess]:
            self._counters["sessions_evicted"] += 1
            peer.conn.close()
            self._flush(peer)
            self._forget(peer)

    def _schedule_sweep(self) -> None:
        interval = max(0.5, min(self.limits.idle_timeout, self.limits.handshake_lifetime) / 4)
        self._sweeper = self._loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        now = self._loop.time()
        for peer in self._live():
            if peer.conn.established:
                self._refresh_activity(peer)
                if now - peer.session.last_activity > self.limits.idle_timeout:
                    self._counters["sessions_idle_closed"] += 1
                    peer.conn.close()
                    self._flush(peer)
                    self._forget(peer)
            elif now - peer.started > self.limits.handshake_lifetime:
                self._counters["handshakes_expired"] += 1
                self._counters["handshakes_failed"] += 1
                peer.session._mark_closed(None)
                self._forget(peer)
                self._restore_replaced(peer)
        if self._transport is not None and not self._transport.is_closing():
            self._schedule_sweep()


def _fmt(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)


async def serve(
    handler: SessionHandler | SessionListener,
    host: str = "::",
    port: int = 5684,
    *,
    psk_store: PskStore | None = None,
    identity_hint: str | bytes | None = None,
    ciphers: Iterable[str | int] | None = None,
    prefer_client_order: bool = False,
    groups: Iterable[int] | None = None,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
    cafile: str | Path | None = None,
    client_auth: ClientAuth = "none",
    raw_public_key: bool = False,
    trusted_public_keys: Iterable[TrustedKey] | None = None,
    trusted_keys_file: str | Path | None = None,
    mtu: int | None = None,
    initial_timeout: float = 1.0,
    max_timeout: float = 60.0,
    max_retransmissions: int = 7,
    limits: ServerLimits | None = None,
    cookie_secret_lifetime: float = 300.0,
    keylog: IO[str] | None = None,
    backend: Backend = "rust",
    reuse_port: bool | None = None,
    connection_id: bool = False,
    connection_id_length: int | None = None,
    batch_io: bool | None = None,
) -> DtlsServer:
    """Serve DTLS 1.2 on one UDP socket; ``await handler(session)`` runs once
    per established session and the session is closed when it returns.

    Credentials: ``psk_store`` maps identities (str or bytes) to keys, or is a
    callable ``identity -> key | None``; ``certfile`` and ``keyfile`` (PEM,
    chain leaf first, P-256/P-384 key) enable the ECDHE-ECDSA suites, and
    ``cafile`` with ``client_auth`` ("optional" or "required") asks clients
    for certificates that chain to those roots. Raw public keys (RFC 7250):
    ``keyfile`` with ``raw_public_key=True`` (no ``certfile`` needed) is
    presented as a bare key; ``trusted_public_keys`` / ``trusted_keys_file``
    with ``client_auth`` accept clients' raw public keys.

    ``connection_id=True`` agrees to connection IDs (RFC 9146) with clients
    that offer them: each session gets a random CID, unique on this server, of
    ``connection_id_length`` bytes (default 8), and follows its client from
    address to address.

    ``batch_io``: read and write datagrams in batches with recvmmsg/sendmmsg
    (:mod:`dtlsfast.batch_transport`, in the Rust core); None (the default)
    uses them where available (Linux) with the Rust backend, True insists,
    False keeps asyncio's transport.
    """
    if not callable(handler) and not isinstance(handler, SessionListener):
        raise ConfigurationError(
            "handler must be an async function taking a DtlsSession, or a SessionListener"
        )
    kwargs: dict[str, Any] = {
        "initial_timeout": initial_timeout,
        "max_timeout": max_timeout,
        "max_retransmissions": max_retransmissions,
        "keylog": keylog,
        "backend": backend,
        "prefer_client_order": prefer_client_order,
        "raw_public_key": raw_public_key,
        "connection_id_length": connection_id_length_for(
            connection_id, connection_id_length, is_client=False
        ),
    }
    if mtu is not None:
        kwargs["mtu"] = mtu
    if trusted_public_keys is not None:
        kwargs["trusted_public_keys"] = trusted_public_keys
    if groups is not None:
        kwargs["groups"] = tuple(groups)
    config = DtlsConfiguration.server(
        psk_store=psk_store,
        identity_hint=identity_hint,
        ciphers=ciphers,
        certfile=certfile,
        keyfile=keyfile,
        cafile=cafile,
        client_auth=client_auth,
        trusted_keys_file=trusted_keys_file,
        **kwargs,
    )

    def make_server() -> DtlsServer:
        return DtlsServer(handler, config, limits or ServerLimits(), cookie_secret_lifetime)

    if batch_io or (batch_io is None and backend == "rust"):
        server = make_server()
        if await open_batch_transport(server, host, port, reuse_port=reuse_port) is not None:
            return server
        if batch_io:
            raise ConfigurationError(
                "batch_io=True needs recvmmsg/sendmmsg (Linux); leave batch_io=None to fall "
                "back to asyncio's transport"
            )
    _, protocol = await open_datagram_endpoint(
        make_server, local_addr=(host, port), reuse_port=reuse_port
    )
    return protocol


__all__ = ["DtlsServer", "ServerLimits", "SessionListener", "serve"]
