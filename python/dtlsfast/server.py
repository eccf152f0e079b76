"""asyncio DTLS server: one UDP socket, many peers, one handler per session.

A thin driver of :class:`~dtlsfast.connection.DtlsConnection`. Datagrams from
addresses without a connection go through the stateless
:class:`~dtlsfast.cookie_gate.CookieGate` (RFC 6347 §4.2.1): no per-peer state
exists before a ClientHello carries a valid cookie. A new ClientHello from an
address that has a session (a rebooted device, RFC 6347 §4.2.8) starts a new
handshake that replaces the old session once it completes.

Who may start a handshake, and which half-open handshake gives way when the
table is full, is :mod:`dtlsfast.admission`'s call: budgets per source
address and per prefix, charged only once a cookie proved the address.

Every datagram is handled on its own: an unexpected error while handling one
(a bug) fails only the connection it was for, with an internal_error alert,
is counted (``dtls_internal_errors``) and logged at most once per source a
minute, and the rest of the batch goes on. Timers and the sweep are guarded
the same way.

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
import contextlib
import itertools
import logging
import os
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast, runtime_checkable

from dtlsfast.admission import MAX_CRYPTO_COST, Admission
from dtlsfast.auth_filter import AuthFailureFilter, SourceFilters, source_key
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
from dtlsfast.connection import DtlsConnection, State
from dtlsfast.cookie_gate import CookieGate
from dtlsfast.datagram_transport import open_datagram_endpoint
from dtlsfast.events import ApplicationDataReceived, ConnectionClosed, HandshakeCompleted
from dtlsfast.exceptions import ConfigurationError, DtlsError, HandshakeTimeoutError
from dtlsfast.handshake.constants import AlertDescription, AlertLevel
from dtlsfast.handshake.cookies import CookieJar
from dtlsfast.log_limiter import LogLimiter
from dtlsfast.resumption import ServerResumption, TicketKeys
from dtlsfast.session import DtlsSession
from dtlsfast.settled_connection import SettledConnection
from dtlsfast.source_budget import SourceBuckets, address_key
from dtlsfast.store.connection_state import PeerValues, peer_values, restored_max_payload
from dtlsfast.store.protocol import SessionStore
from dtlsfast.store.records import SessionRecord
from dtlsfast.store.saver import DEFAULT_INTERVAL
from dtlsfast.store.server_state import ServerState, open_server_state

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
    """Bounds on what one server holds and on what each source may make it do;
    hitting one drops and counts (``server.counters``, named below).

    A *source* is a peer's address; its *prefix* is the network around it
    (``prefix_length_v4``, ``prefix_length_v6``). Every per-source budget
    after the cookie is charged only by ClientHellos whose cookie verified
    (RFC 6347 §4.2.1), so a sender that spoofs someone's address cannot spend
    that address's budget (see :mod:`dtlsfast.admission`).
    """

    max_handshakes: int = 1024
    """Half-open handshakes (after a valid cookie, before completion) at once.
    A full table still admits a newcomer with a valid cookie: the handshake
    that has waited longest for its peer since the server's flight is evicted
    (``handshakes_evicted``)."""
    max_handshakes_per_address: int = 64
    """Half-open handshakes of one source address. At the cap its own
    handshake that stalled longest (a retransmission timeout without
    progress) makes room; if none stalled, the newcomer is refused
    (``dropped_handshakes_per_address``) and its retransmission tries again.
    64 lets a site behind one NAT start 64 handshakes at once, and keeps one
    address to 1/16 of ``max_handshakes``."""
    max_handshakes_per_prefix: int = 256
    """The same per prefix (``dropped_handshakes_per_prefix``): one network
    holds at most a quarter of ``max_handshakes``."""
    prefix_length_v4: int = 24
    """Bits of an IPv4 address (IPv4-mapped IPv6 included) that make its prefix."""
    prefix_length_v6: int = 56
    """Bits of an IPv6 address that make its prefix: /56 is what one customer
    typically gets, so one attacker cannot sidestep the per-address budgets
    by the addresses of its own network."""
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
    """Seconds a handshake may take in all, whatever its retransmissions
    (``handshakes_expired``)."""
    handshake_stall_timeout: float = 10.0
    """Seconds a half-open handshake may go without progress from its peer (a
    new message, or a retransmission of its last flight: a peer on a lossy
    link that retransmits stays) before it is dropped (``handshakes_stalled``).
    Longer than a slow device's ECDHE computation plus three lost
    retransmissions; a client that still comes back finds its cookie valid
    and starts again."""
    hello_rate_per_address: float = 100.0
    """New handshakes per second one source address may start (a token
    bucket charged by every ClientHello with a valid cookie that is not a
    retransmission, admitted or not; ``dropped_hello_rate_address``). While
    its bucket is empty the address's ClientHellos are dropped before the
    cookie is checked. 100 a second is far beyond any device, enough for a
    NAT'd site rebooting, and 5 % of a core in ECDHE-ECDSA flights."""
    hello_burst_per_address: int = 200
    """What one address may start at once, before ``hello_rate_per_address`` applies."""
    hello_rate_per_prefix: float = 400.0
    """New handshakes per second one prefix may start (``dropped_hello_rate_prefix``)."""
    hello_burst_per_prefix: int = 800
    """What one prefix may start at once."""
    crypto_rate: float = 1000.0
    """Expensive operations per second for the whole server: ECDHE key
    generations, ECDH, signatures and client certificate checks
    (:data:`dtlsfast.admission.CRYPTO_COST`: 2 for an ECDHE_PSK handshake,
    3 for ECDHE_ECDSA, 2 more with client authentication). A handshake that
    may need them is refused while the budget is empty (``dropped_crypto_budget``);
    PSK handshakes need none. 1,000 is about 330 ECDHE-ECDSA handshakes a
    second, a third of a core here: the rest stays for established sessions."""
    crypto_burst: int = 2000
    """Expensive operations the server may do at once."""
    crypto_share_per_prefix: float = 0.25
    """The largest share of ``crypto_rate`` (and ``crypto_burst``) one prefix,
    hence one address, may use (``dropped_crypto_share``): a single source
    cannot take the core, and a newcomer from elsewhere finds at least three
    quarters of the budget."""
    hello_verify_rate_per_address: float = 5.0
    """HelloVerifyRequests per second to one source address for ClientHellos
    whose cookie failed (``cookie_hello_verify_throttled``): a client caught
    in a loop of bad cookies no longer drives thousands of round trips a
    second. A ClientHello without a cookie is always answered, so a spoofed
    flood cannot use up a genuine client's answers."""
    hello_verify_burst_per_address: int = 20
    """Answers to failing cookies one address may get at once."""
    source_table_size: int = 65_536
    """Sources each budget after the cookie tracks; past it the least
    recently charged is forgotten (a forgotten source starts again with a
    full bucket, so this never locks anyone out)."""
    hello_verify_table_size: int = 4096
    """Sources tracked for failing cookies. This table is filled before any
    cookie, by addresses that may be spoofed: when it is full, newcomers
    share one bucket instead of evicting a tracked source."""
    auth_failure_burst: int = 2_000
    """MAC-error filter (:mod:`dtlsfast.auth_filter`), records opened in
    Python: failures tolerated at once from a session's own address, and
    from any one source for sessions not its own (their CIDs)."""
    auth_failure_rate: float = 20_000.0
    """Failures per second tolerated after the burst, per session and per
    source; past it their datagrams are dropped unopened until a token comes
    back. A forged record costs 3 to 12 µs to open in Python with the Rust
    core, 1.4 to 2.6 µs to drop unopened (benches/bench_forged_records.py),
    so 20,000 a second is about a tenth of a core more than dropping them
    (with ``backend="pure"``, whose openings cost 17 to 35 µs, a third to
    two thirds of one). Below it every record is opened."""
    auth_failure_table_burst: int = 20_000
    """The same burst for a session's own address in the Rust session
    table's batch path."""
    auth_failure_table_rate: float = 200_000.0
    """The same rate there: opening a forged record costs the table 0.2 to
    0.4 µs more than dropping it, so 200,000 a second is under a tenth of a
    core."""
    auth_failure_sources: int = 4096
    """Sources (hosts) whose failures on sessions not their own are counted
    at once; past it, newcomers share one bucket."""
    reassembly_budget: int = 8 * 1024 * 1024
    """Bytes that all handshakes in progress may hold in partial handshake
    messages, together; past it fragments are dropped and counted
    (``dropped_reassembly_budget``). A handshake whose messages arrive whole
    and in order holds nothing; each holds at most twice
    ``max_handshake_message``, and only the bytes that arrived."""
    reassembly_budget_per_prefix: int = 1024 * 1024
    """What the handshakes from one prefix (``prefix_length_v4``,
    ``prefix_length_v6``) may hold of ``reassembly_budget`` together, so that
    one source cannot take it all."""

    def __post_init__(self) -> None:
        self._check_auth_filter()
        if not 0.0 <= self.eviction_batch < 1.0:
            raise ConfigurationError(
                f"eviction_batch is a share of max_sessions from 0 to below 1, "
                f"not {self.eviction_batch}"
            )
        for name in (
            "max_handshakes",
            "max_handshakes_per_address",
            "max_handshakes_per_prefix",
            "hello_burst_per_address",
            "hello_burst_per_prefix",
            "hello_verify_burst_per_address",
            "source_table_size",
            "hello_verify_table_size",
        ):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in (
            "handshake_lifetime",
            "handshake_stall_timeout",
            "hello_rate_per_address",
            "hello_rate_per_prefix",
            "crypto_rate",
            "hello_verify_rate_per_address",
        ):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be above 0, not {getattr(self, name)}")
        if not 0 <= self.prefix_length_v4 <= 32 or not 0 <= self.prefix_length_v6 <= 128:
            raise ConfigurationError(
                "prefix_length_v4 is 0..32 bits and prefix_length_v6 0..128, not "
                f"{self.prefix_length_v4} and {self.prefix_length_v6}"
            )
        if not 0 < self.crypto_share_per_prefix <= 1:
            raise ConfigurationError(
                f"crypto_share_per_prefix is a share above 0 and at most 1, "
                f"not {self.crypto_share_per_prefix}"
            )
        if self.crypto_burst * self.crypto_share_per_prefix < MAX_CRYPTO_COST:
            raise ConfigurationError(
                f"crypto_burst * crypto_share_per_prefix must cover the costliest handshake "
                f"({MAX_CRYPTO_COST} operations), not "
                f"{self.crypto_burst * self.crypto_share_per_prefix:g}"
            )

    def _check_auth_filter(self) -> None:
        for name in ("auth_failure_burst", "auth_failure_table_burst", "auth_failure_sources"):
            if not getattr(self, name) >= 1:
                raise ConfigurationError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("auth_failure_rate", "auth_failure_table_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate < float("inf"):
                raise ConfigurationError(f"{name} is failures per second, >= 0, not {rate}")


#: Seconds of one retransmission timer slot (see DtlsServer._arm_timer).
TIMER_SLOT = 0.01
#: Attempts at drawing a CID not in use before giving up on one for a handshake.
CID_DRAWS = 16
#: An unexpected error is logged at most once per source address in this many seconds.
ERROR_LOG_INTERVAL = 60.0
#: Seconds between the info lines that sum up the handshakes (per session: debug).
SUMMARY_INTERVAL = 10.0


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
    timer: int | None = None
    """The slot its retransmission timer is in (``DtlsServer._timer_slots``)."""
    task: asyncio.Task[None] | None = None
    replaces: _Peer | None = None
    counted: bool = field(default=False)
    forgotten: bool = field(default=False)
    auth_filter: AuthFailureFilter | None = None
    """Created at the peer's first authentication failure."""
    table_id: int | None = None
    """The session's id in the server's session table, once it joined it."""
    state_key: bytes = b""
    """The session's name in the state file (dtlsfast.store.server_state), if saved."""

    # The session's endpoint (dtlsfast.session.SessionEndpoint): the peer
    # itself, so that a session costs no bound method or closure.

    def send(self, session: DtlsSession, data: bytes) -> None:
        self.server._send(self, data)

    def flush(self, session: DtlsSession) -> None:
        self.server._flush_session(self)


#: ``_Peer.started`` of a session in the table: one float shared by all.
_SETTLED = 0.0

#: The first byte of a datagram that starts with a tls12_cid record (RFC 9146 §4).
_TLS12_CID = b"\x19"


def _hello_random(data: bytes) -> bytes:
    # An epoch-0 ClientHello's random: after the record and handshake headers
    # and client_version (RFC 6347 §4.2.2), in the first fragment.
    return data[27:59]


class DtlsServer(asyncio.DatagramProtocol):
    """The server endpoint returned by :func:`serve`."""

    def __init__(
        self,
        handler: SessionHandler | SessionListener,
        config: DtlsConfiguration,
        limits: ServerLimits,
        cookie_secret_lifetime: float,
        state: ServerState | None = None,
        cookie_secret_seed: bytes | None = None,
    ) -> None:
        self._handler = handler
        #: The listener's callback, decided once: a run-time check against a
        #: Protocol costs microseconds, too much to repeat per handshake.
        self._session_opened: Callable[[DtlsSession], None] | None = (
            handler.session_opened if isinstance(handler, SessionListener) else None
        )
        self.config = config
        self.limits = limits
        self._loop = asyncio.get_running_loop()
        backend = load_backend(config.backend)
        self._backend = backend
        self._gate = CookieGate(
            backend,
            CookieJar(
                secret_lifetime=cookie_secret_lifetime,
                now=self._loop.time(),
                seed=cookie_secret_seed,
            ),
            hello_verify_limit=SourceBuckets(
                limits.hello_verify_rate_per_address,
                limits.hello_verify_burst_per_address,
                limits.hello_verify_table_size,
                when_full="share",
            ),
        )
        #: Shared by the handshake reassembly of every connection.
        self._reassembly_budget = backend.ReassemblyBudget(
            limits.reassembly_budget, limits.reassembly_budget_per_prefix
        )
        self._admission: Admission[_Peer] = Admission(limits, config)
        self._error_log = LogLimiter(interval=ERROR_LOG_INTERVAL)
        self._next_full_sweep = self._loop.time()
        self._next_summary = self._next_full_sweep + SUMMARY_INTERVAL
        self._summarized = (0, 0, 0)
        self._peers: dict[Any, _Peer] = {}
        #: Retransmission timer slot -> the peers whose timer is in it (by id);
        #: each a handshake or session in ``_peers``/``_by_cid``, so bounded alike.
        self._timer_slots: dict[int, dict[int, _Peer]] = {}
        #: CID -> peer (RFC 9146), one entry per handshake or session at most,
        #: so bounded like ``_peers``.
        self._by_cid: dict[bytes, _Peer] = {}
        self._cid_length = config.connection_id_length
        #: The first bytes of every CID this server draws (a worker's index,
        #: :mod:`dtlsfast.workers.steering`); the rest is random.
        self.connection_id_prefix = b""
        #: Called with a tls12_cid datagram whose CID no session here has, and
        #: its source; True if it took it (a worker handing it to the worker
        #: that owns the CID, :mod:`dtlsfast.workers.handover`).
        self.foreign_cid: Callable[[bytes, Any], bool] | None = None
        #: Called with each completed handshake's duration in seconds (metrics).
        self.handshake_observer: Callable[[float], None] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = self._loop.create_future()
        self._counters: Counter[str] = Counter()
        self._sweeper: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._established = 0
        # Established sessions' record state (the fast path, DESIGN.md).
        self._table = backend.SessionTable(limits.max_sessions)
        self._table.set_auth_filter(limits.auth_failure_table_burst, limits.auth_failure_table_rate)
        #: MAC-error filter of sources sending records for sessions not theirs.
        self._sources = SourceFilters(
            limits.auth_failure_sources, limits.auth_failure_burst, limits.auth_failure_rate
        )
        self._table_ids = itertools.count(1)
        self._batched = False
        self.state = state
        """The saved sessions (``state_file``), or None."""
        if state is not None:
            state.restore(self, self._loop.time())
            state.start(self._loop)

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

        ``reassembly_bytes``: held by handshakes' partial messages, under
        ``ServerLimits.reassembly_budget``; ``dropped_reassembly_budget``:
        fragments it refused.

        With connection IDs: ``connection_ids`` (CIDs in use),
        ``cid_address_updates`` (sessions moved to a new address),
        ``cid_address_kept`` (records from another address that did not move
        their session), ``dropped_unknown_cid``, ``dropped_bad_cid``.

        The front door (:class:`ServerLimits` says which limit each is):
        ``cookie_sequence_too_high``, ``cookie_hello_verify_throttled``,
        ``dropped_hello_rate_address``, ``dropped_hello_rate_prefix``,
        ``dropped_crypto_share``, ``dropped_crypto_budget``,
        ``dropped_handshakes_per_address``, ``dropped_handshakes_per_prefix``,
        ``handshakes_evicted``, ``handshakes_stalled``, ``handshakes_expired``,
        ``handshakes_started`` (admitted), ``dropped_hello_rate_muted``
        (ClientHellos the batch socket dropped on arrival from a source whose
        hello budget was empty);
        ``sources_tracked`` and ``cookie_sources_tracked`` (entries in the
        per-source tables), ``crypto_operations`` (expensive operations
        charged). ``dtls_internal_errors``: datagrams, timers or sweeps that
        raised unexpectedly (a bug; each failed only its own connection), and
        ``internal_errors_not_logged``.
        ``unknown_psk_identities``: handshakes with a PSK identity the store
        does not have (the clients are not told, RFC 4279 §2).

        The MAC-error filter (:mod:`dtlsfast.auth_filter`): ``dropped_bad_auth``
        (records opened that failed authentication), ``dropped_auth_throttled``
        (datagrams dropped unopened), ``auth_filter_sources`` (sources with a
        bucket for records on sessions not theirs).

        Resumption (:class:`~dtlsfast.resumption.ServerResumption`):
        ``resumed_ticket``, ``resumed_session_id`` (abbreviated handshakes),
        ``tickets_issued``, ``session_ids_cached``, and
        ``resumption_refused_<reason>`` for tickets and session IDs that fell
        back to a full handshake (reasons: :class:`~dtlsfast.resumption.ResumptionFailure`).

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
            out["dtls_internal_errors"] += peer.conn.counters.get("internal_errors", 0)
            out["unknown_psk_identities"] += peer.conn.counters.get("unknown_psk_identity", 0)
        out["sessions_open"] = sum(1 for p in live if p.conn.established)
        out["handshakes_in_progress"] = sum(1 for p in live if not p.conn.established)
        out["connection_ids"] = len(self._by_cid)
        out["auth_filter_sources"] = len(self._sources)
        out["sessions_in_table"] = len(self._table)
        out["session_table_bytes"] = len(self._table) * self._table.session_footprint
        out["coap_answered_in_table"] = self._table.coap_answered
        out["sources_tracked"] = self._admission.sources_tracked
        out["cookie_sources_tracked"] = len(self._gate.hello_verify_limit or ())
        out["crypto_operations"] = self._admission.crypto_spent
        out["internal_errors_not_logged"] = self._error_log.suppressed
        if isinstance(self._transport, BatchDatagramTransport):
            out["dropped_hello_rate_muted"] = self._transport.muted_hellos
        # Datagrams too long for the receive buffers (the transport counts them).
        out["dropped_truncated"] += getattr(self._transport, "truncated", 0)
        totals = self._table.totals
        out["dropped_replay"] += totals["replayed"]
        out["dropped_bad_auth"] += totals["bad_auth"]
        out["dropped_auth_throttled"] += totals["throttled"]
        out["cookie_hello_verify_sent"] += totals["hellos_answered"]
        if self.config.resumption is not None:
            out.update(self.config.resumption.counters)
        out["reassembly_bytes"] = self._reassembly_budget.used
        out["dropped_reassembly_budget"] = self._reassembly_budget.refused
        return out

    def close(self, *, keep_sessions: bool | None = None) -> None:
        """Close the socket. With ``keep_sessions`` (the default when there is
        a state file) every session is saved for the next start and its peer
        is not told: it carries on with the restarted server. Otherwise every
        peer gets close_notify (and the state file keeps no session)."""
        if keep_sessions is None:
            keep_sessions = self.state is not None
        if keep_sessions:
            self._close_state()  # saves what changed, before the sessions are forgotten
        for peer in self._live():
            try:
                if peer.conn.established and not keep_sessions:
                    peer.conn.close()
                    self._flush(peer)
                self._forget(peer)
            except Exception as exc:
                self._internal_error(exc, peer.addr, peer)
        self._close_state()  # without keep_sessions: the ended sessions' deletions
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._transport is not None:
            self._transport.close()
        for task in list(self._tasks):
            task.cancel()

    def _close_state(self) -> None:
        state, self.state = self.state, None
        if state is not None:
            try:
                state.close(self._loop.time())
            except DtlsError as exc:
                logger.error("the sessions could not be saved: %s", exc)

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

    def datagram_received(self, data: bytes, addr: Any, now: float | None = None) -> None:
        """One datagram from ``addr``; ``now``: the loop's time if the caller
        just read it (a batch is served at one time, as the Rust table
        serves it)."""
        if now is None:
            now = self._loop.time()
        cid = self._cid_length and data[:1] == _TLS12_CID
        # An epoch-0 ClientHello: type 22, epoch 0, handshake type 1 at offset 13
        # (tested here, not in a function: every datagram asks).
        hello = (
            not cid
            and len(data) > 25
            and data[0] == 22
            and data[3] == 0
            and data[4] == 0
            and data[13] == 1
        )
        try:
            if cid:
                self._cid_datagram_received(data, addr, now)
                return
            peer = self._peers.get(addr)
            if hello:
                self._hello_received(peer, data, addr, now)
            elif peer is not None:
                self._feed_checked(peer, data, now)
            else:
                self._counters["dropped_no_session"] += 1
        except Exception as exc:
            # Whatever raised was handling this datagram alone: fail only the
            # connection it was for (none for a ClientHello: the gate keeps
            # no state), and go on with the next datagram.
            culprit = None
            if cid:
                assert self._cid_length is not None
                culprit = self._by_cid.get(data[11 : 11 + self._cid_length])
            elif not hello:
                culprit = self._peers.get(addr)
            self._internal_error(exc, addr, culprit)

    def _hello_received(self, peer: _Peer | None, data: bytes, addr: Any, now: float) -> None:
        """An epoch-0 ClientHello: the cookie gate, then admission."""
        admission = self._admission
        keys: tuple[Hashable, Hashable] | None = None
        if peer is None or peer.conn.established or _hello_random(data) != peer.conn.client_random:
            # Anything but a retransmission of the hello of this address's
            # handshake: a source whose budget valid cookies emptied is
            # refused before its cookie is checked, the cheapest refusal.
            keys = admission.keys(addr)  # the source's keys, once per hello
            refused = admission.out_of_budget(addr, now, keys)
            if refused is not None:
                self._counters[f"dropped_{refused}"] += 1
                self._mute(addr, refused, now)
                return
        # Every epoch-0 ClientHello goes through the stateless cookie check,
        # even from an address that has a connection: a rebooted device
        # (RFC 6347 §4.2.8) or a client that restarted its handshake.
        verdict, answer = self._gate.check(data, addr, now)
        if verdict != "accepted":
            if answer is not None and self._transport is not None:
                self._transport.sendto(answer, addr)
            return
        assert answer is not None
        hello_datagram = answer
        if peer is not None and peer.conn.client_random == _hello_random(hello_datagram):
            # The same handshake's hello again: a retransmission.
            self._feed(peer, data, now)
            return
        length = int.from_bytes(hello_datagram[14:17], "big")
        hello_body = hello_datagram[25 : 25 + length]
        hello = self._backend.decode_client_hello(hello_body)
        offered = hello.cipher_suites
        budget_read = keys is not None  # out_of_budget read the buckets above
        if keys is None:
            keys = admission.keys(addr)
        half_open = peer if peer is not None and not peer.conn.established else None
        decision = admission.admit(
            keys, offered, now, replacing=half_open, hello_budget_read=budget_read
        )
        if decision.refused is not None:
            self._counters[f"dropped_{decision.refused}"] += 1
            return
        if decision.evict:
            for evicted in decision.evict:
                self._drop_handshake(evicted, "handshakes_evicted")
            peer = self._peers.get(addr)  # an eviction may have restored a session here
        self._counters["handshakes_started"] += 1
        cid = None if self._cid_length is None else self._new_cid()
        conn = DtlsConnection(
            self.config,
            peer=addr,
            connection_id=cid,
            reassembly_budget=self._reassembly_budget,
            reassembly_source=_as_bytes(keys[1]),
        )
        # Decoded once, here. A datagram of that one record and nothing else
        # (the gate found the hello's whole fragment at its start) goes
        # straight to the connection's state machine.
        whole = (
            len(hello_datagram) == 25 + length
            and hello_datagram[1] == 0xFE
            and length <= self.config.max_handshake_message
        )
        conn._hello_hint = (hello_body, hello, hello_datagram if whole else None)
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
        self._feed(new, hello_datagram, now)
        if not new.forgotten:
            # Into the half-open table once the hello is answered: entered at
            # `now`, it is where a progress at `now` would put it (so _feed
            # had nothing to touch), and a refused hello never enters.
            admission.started(new, keys, now)
        if admission.prices_crypto:  # else whatever the connection chose costs nothing
            suite = conn.cipher_suite
            # An abbreviated handshake (resumption) does no public-key work.
            spent = None if suite is None or conn.resumed is not None else suite.key_exchange
            admission.charge_crypto(keys[1], spent, now)

    def _mute(self, addr: Any, reason: str, now: float) -> None:
        """Have the batch socket drop the refused source's ClientHellos on
        arrival until its budget has a token again: a source blasting them
        then costs tens of nanoseconds a datagram, not a trip into Python."""
        transport = self._transport
        if not isinstance(transport, BatchDatagramTransport):
            return
        mute = self._admission.mute_for(addr, reason, now)
        if mute is not None:
            transport.mute_hellos(*mute)

    def _live(self) -> list[_Peer]:
        """Every handshake and session: those with an address entry, and those
        with a CID whose address entry was taken by another client."""
        live = {id(p): p for p in self._peers.values()}
        for peer in self._by_cid.values():
            live.setdefault(id(peer), peer)
        return list(live.values())

    # -- connection IDs (RFC 9146) -------------------------------------------

    def _new_cid(self) -> bytes | None:
        """A random CID not in use on this server (CIDs on); None (no CID
        offered) if ``CID_DRAWS`` draws all collide, which only a tiny CID
        length allows."""
        assert self._cid_length is not None
        if self._cid_length == 0:
            return b""
        prefix = self.connection_id_prefix
        for _ in range(CID_DRAWS):
            cid = prefix + os.urandom(self._cid_length - len(prefix))
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
            if self.foreign_cid is not None and self.foreign_cid(data, addr):
                self._counters["cid_handed_over"] += 1
                return
            self._counters["dropped_unknown_cid"] += 1
            return
        if addr == peer.addr:
            self._feed_checked(peer, data, now)
            return
        # From elsewhere: charged to the source, never to the session (a
        # forger must not throttle the genuine peer; see dtlsfast.auth_filter).
        source = source_key(addr)
        if not self._sources.allows(source, now):
            self._counters["dropped_auth_throttled"] += 1
            return
        conn = peer.conn
        newest_before = _advances(conn)
        failures = conn.drops["bad_auth"]
        conn.receive_datagram(data, now)
        self._sources.charge(source, conn.drops["bad_auth"] - failures, now)
        if _advances(conn) > newest_before and not peer.conn.closed and not peer.forgotten:
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
        try:
            # Batched, the Rust demultiplexer already offered the datagram to the
            # table (serve_batch) and handed it here because the table declined.
            if peer.table_id is not None:
                self._feed_settled(peer, data, now)
                return
            conn = peer.conn
            half_open = peer in self._admission.table
            if half_open:
                state = getattr(conn, "state", None)
                repeats = conn.counters.get("peer_retransmissions", 0)
                authenticated = None  # a handshake in progress: everything counts
            else:
                authenticated = _authenticated(conn)
            conn.receive_datagram(data, now)
            if authenticated is None or _authenticated(conn) != authenticated:
                peer.session.last_activity = now
            answered = self._flush(peer)
            if (
                half_open
                # Established or failed in this datagram: out of the half-open table.
                and not (peer.counted or peer.forgotten)
                and (
                    answered
                    or getattr(conn, "state", None) is not state
                    or conn.counters.get("peer_retransmissions", 0) > repeats
                )
            ):
                # A new message, or a retransmission of the peer's last flight
                # (the connection answers only some of them: RFC 6347 §4.2.4
                # with its amplification bound, but each one is the peer's).
                self._admission.progressed(peer, now)
            if peer.table_id is None and not peer.forgotten:
                full = peer.conn
                if isinstance(full, DtlsConnection):
                    # Not settled before it is established (the usual answer,
                    # worked out without a call).
                    final = full.state is State.ESTABLISHED and full.settled_final_flight()
                    if final is not False:
                        self._join_table(peer, now, final)
                elif full.settled:
                    self._join_table(peer, now)
        except Exception as exc:
            self._internal_error(exc, peer.addr, peer)

    # -- the session table (fast path) ----------------------------------------

    def _feed_settled(self, peer: _Peer, data: bytes, now: float) -> None:
        """_feed for a session in the table: its connection is the slim one,
        long out of the half-open table and never to join the table again.
        Unbatched, the table first tries the datagram as application data;
        batched, the Rust demultiplexer already did. What it declines
        (alerts, handshake, anything unexpected) goes to the connection."""
        conn = peer.conn
        assert isinstance(conn, SettledConnection)
        if not self._batched:
            result = self._table.open_datagram(peer.table_id, data)
            if result is not None:
                plaintexts, replayed, bad_auth, replies = result
                session = peer.session
                if plaintexts or replies:  # forged or replayed records are no activity
                    session.last_activity = now
                    # Its application data: the peer has our Finished (RFC 6347 §4.2.4).
                    conn.peer_has_final_flight()
                if replayed:
                    conn.count_drop("replay", replayed)
                if bad_auth:
                    conn.count_drop("bad_auth", bad_auth)
                if replies and self._transport is not None:
                    for reply in replies:
                        self._transport.sendto(reply, peer.addr)
                for plaintext in plaintexts:
                    session._deliver(plaintext)
                return
        authenticated = conn.authenticated
        conn.receive_datagram(data, now)
        if conn.authenticated != authenticated:
            peer.session.last_activity = now
        self._flush(peer)

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
        now = self._loop.time()
        # A new peer's first ClientHello (no cookie) is answered in Rust with
        # the gate's HelloVerifyRequest: stateless (RFC 6347 §4.2.1), so
        # nothing of it reaches Python; hellos with a cookie come here.
        received, to_python, delivered, unsent, closed = self._table.serve_batch(
            io, now, self._gate.batch_gate(now)
        )
        peers = self._peers
        # In the order that keeps each address's datagrams in theirs: a
        # session's application data came before its close_notify (the table
        # unbinds the address there), and what came from that address after
        # it is in to_python (a new hello, mostly).
        for addr, plaintext in delivered:
            peer = peers.get(addr)
            if peer is not None and peer.table_id is not None:
                try:
                    peer.session._deliver(plaintext)
                except Exception as exc:
                    self._internal_error(exc, addr, peer)
        for addr, table_id in closed:
            # The peer's close_notify, answered by the table (RFC 5246
            # §7.2.1): the session ends as if its connection had read it.
            peer = peers.get(addr)
            if peer is not None and peer.table_id == table_id:
                try:
                    conn = peer.conn
                    assert isinstance(conn, SettledConnection)  # a peer in the table
                    conn.close_notified()
                    self._flush(peer)
                except Exception as exc:
                    self._internal_error(exc, addr, peer)
        if received == 1 and to_python:
            # One datagram, for Python: a peer one handshake at a time, mostly.
            # Its answer (the next flight) leaves as soon as it is queued,
            # before the bookkeeping that follows it; still one system call.
            cast(BatchDatagramTransport, self._transport).send_at_once()
        for data, addr in to_python:
            self.datagram_received(data, addr, now)  # never raises
        if unsent and self._transport is not None:
            for data, addr in unsent:
                try:
                    self._transport.sendto(data, addr)
                except Exception as exc:
                    self._internal_error(exc, addr)
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

    def _restore_sessions(
        self, saved: list[tuple[SessionRecord, int]], now: float
    ) -> list[_Peer | None]:
        """Saved sessions back in the session table, established, each
        ``(record, first write sequence number)`` imported in one call to the
        table (ServerState.restore): one peer per record, None when its
        address or CID is taken, the table is full or the record unusable."""
        table, config, table_ids = self._table, self.config, self._table_ids
        items: list[tuple[int, bytes, int | None, bool]] = []
        usable: list[tuple[SessionRecord, int, PeerValues] | None] = []
        reasons: Counter[str] = Counter()
        for record, begin in saved:
            try:
                values = peer_values(record)
            except ConfigurationError as exc:
                reasons[str(exc)] += 1
                usable.append(None)
                continue
            table_id = next(table_ids)
            # Only plain records are demultiplexed by address in the table
            # (tls12_cid ones by CID, in Python): as _join_table binds them.
            bind = record.local_cid is None and record.peer_cid is None
            items.append((table_id, record.record_state, begin, bind))
            usable.append((record, table_id, values))
        outcomes = iter(table.import_sessions(items, now))
        peers_by_addr, by_cid = self._peers, self._by_cid
        opened = self._open_session
        restored_connection = SettledConnection.restored
        payloads: dict[tuple[int, int | None], int] = {}  # a few suites and limits
        restored: list[_Peer | None] = []
        for entry in usable:
            if entry is None:
                restored.append(None)
                continue
            record, table_id, values = entry
            addr = next(outcomes)
            cid = record.local_cid or b""
            if isinstance(addr, str) or addr is None or addr in peers_by_addr or cid in by_cid:
                if isinstance(addr, str):
                    reasons[addr] += 1
                else:
                    table.remove(table_id)
                restored.append(None)
                continue
            limit_key = (record.cipher_suite, record.record_size_limit)
            max_payload = payloads.get(limit_key)
            if max_payload is None:
                max_payload = payloads[limit_key] = restored_max_payload(config, record)
            conn = restored_connection(
                table,
                table_id,
                record,
                values,
                config=config,
                peer=addr,
                max_payload=max_payload,
            )
            peer = _Peer(self, conn, now, addr, cid, table_id=table_id, counted=True)
            peer.session = session = DtlsSession(conn, addr, peer)
            session.last_activity = now
            peers_by_addr[addr] = peer
            if cid:
                by_cid[cid] = peer
            self._established += 1
            opened(peer)
            restored.append(peer)
        for reason, count in reasons.items():
            logger.warning("%d saved sessions could not be restored: %s", count, reason)
        return restored

    def _join_table(
        self,
        peer: _Peer,
        now: float,
        final: tuple[int, list[bytes]] | Literal[False] | None = False,
    ) -> None:
        """Swap an established session's connection for the slim one, its
        record state in the table: right after the handshake, whatever the
        session (RFC 9146 CIDs included), so that it costs little memory.
        ``now``: the loop's time of the datagram that settled it."""
        if len(self._table) >= self._table.capacity:
            self._counters["session_table_full"] += 1
            return
        table_id = next(self._table_ids)
        full = peer.conn
        assert isinstance(full, DtlsConnection)
        self._take_counts(full)
        full.discard_handshake_buffers()
        # The slim connection carries on; the handshake's state goes with `full`.
        settled = full.settle_into(self._table, table_id, now, final=final)
        peer.conn = peer.session._conn = settled
        peer.table_id = table_id
        peer.started = _SETTLED  # the handshake's start time is no use any more: one float less
        if (self._batched or self.state is not None) and not full.connection_id:
            # From now on the Rust core demultiplexes this peer's datagrams
            # (tls12_cid records are demultiplexed by CID, in Python); the
            # state file saves the bound address with the session.
            self._table.bind_address(table_id, peer.addr, now)

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
        """Feed a datagram through the peer's MAC-error filter (the filter's
        calls only when it exists or the datagram failed authentication:
        every datagram of every handshake comes here)."""
        guard = peer.auth_filter
        if guard is not None and not guard.allows(now):
            self._counters["dropped_auth_throttled"] += 1
            return
        failures = peer.conn.drops.get("bad_auth", 0)
        self._feed(peer, data, now)
        failures = peer.conn.drops.get("bad_auth", 0) - failures
        if failures > 0:
            self._charge(peer, failures, now)

    def _charge(self, peer: _Peer, failures: int, now: float) -> None:
        """Charge ``failures`` authentication failures to the peer's filter."""
        guard = peer.auth_filter
        if guard is None:
            limits = self.limits
            guard = AuthFailureFilter(limits.auth_failure_burst, limits.auth_failure_rate, now)
            peer.auth_filter = guard
        guard.charge(failures, now)

    def _flush_session(self, peer: _Peer) -> None:
        if not peer.forgotten:
            self._flush(peer)

    def _flush(self, peer: _Peer) -> int:
        """Send what the peer's connection queued and act on its events (the
        handlers run here); returns how many datagrams went out."""
        try:
            conn = peer.conn
            # Datagrams and events in one call (both connection kinds).
            datagrams, events = conn.take_output()
            if self._transport is not None:
                for datagram in datagrams:
                    self._transport.sendto(datagram, peer.addr)
            for event in events:
                # By exact class (no event class is subclassed): type() is
                # no function call, isinstance() one per event and kind.
                if type(event) is ApplicationDataReceived:
                    peer.session._deliver(event.data)
                elif type(event) is HandshakeCompleted:
                    self._on_established(peer, event)
                elif type(event) is ConnectionClosed:
                    self._on_closed(peer, event)
                    return len(datagrams)
            self._arm_timer(peer)
            return len(datagrams)
        except Exception as exc:
            self._internal_error(exc, peer.addr, peer)
            return 0

    # -- unexpected errors ----------------------------------------------------

    def _internal_error(self, exc: Exception, addr: Any, peer: _Peer | None = None) -> None:
        """A bug met while handling one datagram, timer or sweep for ``addr``:
        count it, log it (at most once per source a minute) and fail ``peer``,
        the one connection concerned, with internal_error. Never raises."""
        self._counters["dtls_internal_errors"] += 1
        with contextlib.suppress(Exception):
            if self._error_log.allow(address_key(addr), self._loop.time()):
                logger.error(
                    "unexpected error serving %s%s; please report it "
                    "(logged at most once per source a minute, %d lines held back so far)",
                    _fmt(addr),
                    "" if peer is None else ": its connection was closed with internal_error",
                    self._error_log.suppressed,
                    exc_info=exc,
                )
        if peer is None or peer.forgotten:
            return
        conn = peer.conn
        established = conn.established
        with contextlib.suppress(Exception):
            # Both connection kinds queue an alert in their current epoch.
            if not conn.closed:
                conn._send_alert(AlertLevel.FATAL, AlertDescription.INTERNAL_ERROR)
            if self._transport is not None:
                for datagram in conn.datagrams_to_send(self._loop.time()):
                    self._transport.sendto(datagram, peer.addr)
        with contextlib.suppress(Exception):
            conn.abort()
        if not established:
            self._counters["handshakes_failed"] += 1
        error = DtlsError(
            f"the server closed this connection with internal_error after an unexpected "
            f"{type(exc).__name__}; see the server's log"
        )
        with contextlib.suppress(Exception):
            peer.session._mark_closed(error)  # runs the application's close callback
        with contextlib.suppress(Exception):
            self._forget(peer)
        with contextlib.suppress(Exception):
            self._restore_replaced(peer)
        if peer.task is not None:
            peer.task.cancel()

    def _on_established(self, peer: _Peer, event: HandshakeCompleted) -> None:
        self._admission.finished(peer)
        self._counters["handshakes_completed"] += 1
        if self.handshake_observer is not None:
            self.handshake_observer(self._loop.time() - peer.started)
        self._established += 1
        peer.counted = True
        if logger.isEnabledFor(logging.DEBUG):
            # Per session at debug only: a gateway must not pay a log line per
            # device per handshake (the periodic summary counts them at info).
            logger.debug(
                "session with %s established (%s, identity %r%s)",
                _fmt(peer.addr),
                event.cipher_suite,
                event.psk_identity,
                ", connection ID" * bool(peer.conn.connection_id)
                + (f", resumed by {resumed}" if (resumed := _resumed(peer.conn)) else ""),
            )
        if peer.cid and peer.conn.connection_id != peer.cid:
            self._release_cid(peer)  # the client did not offer connection_id
        if self.state is not None:
            self.state.established(peer)
        if peer.replaces is not None:
            old, peer.replaces = peer.replaces, None
            self._counters["sessions_replaced"] += 1
            old.session._mark_closed(None)
            self._forget(old)
            if old.task is not None:
                old.task.cancel()
        self._evict_if_full()
        self._open_session(peer)

    def _open_session(self, peer: _Peer) -> None:
        """Hand an established (or restored) session to the application."""
        if self._session_opened is not None:
            self._session_opened(peer.session)
            return
        task = self._loop.create_task(self._run_handler(peer))
        peer.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_handler(self, peer: _Peer) -> None:
        try:
            await cast(SessionHandler, self._handler)(peer.session)
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
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("handshake with %s failed: %s", _fmt(peer.addr), event.error)
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "session with %s closed%s",
                _fmt(peer.addr),
                f": {event.error}" * bool(event.error),
            )
        if event.error is not None and not isinstance(event.error, HandshakeTimeoutError):
            self._invalidate_session(peer.conn)
        peer.session._mark_closed(event.error)
        self._forget(peer)
        if peer.replaces is not None:
            self._restore_replaced(peer)

    def _invalidate_session(self, conn: DtlsConnection | SettledConnection) -> None:
        """RFC 5246 §7.2: a connection that ended with a fatal alert (sent
        or received) leaves its session non-resumable by its session ID."""
        resumption = self.config.resumption
        if resumption is not None:
            sid = conn._session_id if isinstance(conn, DtlsConnection) else conn.session_id
            resumption.invalidate(sid)

    def _restore_replaced(self, peer: _Peer) -> None:
        """The replacement handshake failed: the old session goes on."""
        old = peer.replaces
        if old is not None and not old.forgotten and self._peers.get(old.addr) is None:
            self._peers[old.addr] = old

    def _forget(self, peer: _Peer) -> None:
        peer.forgotten = True
        if peer.state_key and self.state is not None:
            self.state.ended(peer)
        if isinstance(peer.conn, DtlsConnection):
            # Now, not when a reference cycle is collected.
            peer.conn.discard_handshake_buffers()
        if peer.table_id is None:
            # A peer in the session table left the half-open table when its
            # handshake completed (_on_established) or never was in it.
            self._admission.finished(peer)
        else:
            self._leave_table(peer)
        if peer.cid:  # the calls only when there is something to undo
            self._release_cid(peer)
        if peer.timer is not None:
            self._cancel_timer(peer)
        if peer.counted:
            peer.counted = False
            self._established -= 1
        self._take_counts(peer.conn)
        if self._peers.get(peer.addr) is peer:
            del self._peers[peer.addr]

    def _take_counts(self, conn: DtlsConnection | SettledConnection) -> None:
        """Move a connection's drops and retransmissions into the server's counters."""
        drops, counters = conn.drops, conn.counters
        retransmissions = counters.get("retransmissions", 0)
        internal = counters.get("internal_errors", 0)
        unknown = counters.get("unknown_psk_identity", 0)
        if not (drops or retransmissions or internal or unknown):
            return  # most handshakes: nothing to move
        mine = self._counters
        for reason, value in drops.items():
            mine[f"dropped_{reason}"] += value
        mine["retransmissions"] += retransmissions
        if internal and isinstance(counters, Counter):
            # The connection's own internal_error closes (caught inside it).
            mine["dtls_internal_errors"] += internal
            counters["internal_errors"] = 0
        mine["unknown_psk_identities"] += unknown
        conn.clear_counts()

    # Retransmission timers (RFC 6347 §4.2.4) in slots of TIMER_SLOT seconds:
    # one loop timer per slot that has any, not one per flight of every
    # handshake (a TimerHandle, a heap push and a cancel each).

    def _cancel_timer(self, peer: _Peer) -> None:
        slot = peer.timer
        if slot is not None:
            peer.timer = None
            peers = self._timer_slots.get(slot)
            if peers is not None:
                peers.pop(id(peer), None)

    def _arm_timer(self, peer: _Peer) -> None:
        when = peer.conn.get_timer()
        old = peer.timer
        if when is None:
            if old is not None:
                self._cancel_timer(peer)
            return
        # The first slot that ends after ``when``: a timer fires at most one
        # slot late, never early.
        slot = int(when // TIMER_SLOT) + 1
        if slot == old:
            return  # already armed for that slot
        if old is not None:
            self._cancel_timer(peer)
        peers = self._timer_slots.get(slot)
        if peers is None:
            peers = self._timer_slots[slot] = {}
            self._loop.call_at(slot * TIMER_SLOT, self._fire_timers, slot)
        peers[id(peer)] = peer
        peer.timer = slot

    def _fire_timers(self, slot: int) -> None:
        peers = self._timer_slots.pop(slot, None)
        if not peers:
            return
        for peer in list(peers.values()):
            if peer.timer == slot:
                try:
                    self._on_timer(peer)
                except Exception as exc:  # each peer's timer on its own
                    self._internal_error(exc, peer.addr, peer)

    def _on_timer(self, peer: _Peer) -> None:
        peer.timer = None
        if self._peers.get(peer.addr) is not peer:
            return
        try:
            peer.conn.handle_timer(self._loop.time())
        except Exception as exc:
            self._internal_error(exc, peer.addr, peer)
            return
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
            self._close_and_forget(peer)

    def _close_and_forget(self, peer: _Peer) -> None:
        """Close a session with close_notify (eviction, idle timeout)."""
        try:
            peer.conn.close()
            self._flush(peer)
            self._forget(peer)
        except Exception as exc:
            self._internal_error(exc, peer.addr, peer)

    def _drop_handshake(self, peer: _Peer, reason: str) -> None:
        """Give up a half-open handshake silently (evicted, stalled, expired);
        a session it was to replace goes on."""
        self._counters[reason] += 1
        self._counters["handshakes_failed"] += 1
        try:
            peer.session._mark_closed(None)
            self._forget(peer)
            self._restore_replaced(peer)
        except Exception as exc:
            self._internal_error(exc, peer.addr, peer)

    def _schedule_sweep(self) -> None:
        limits = self.limits
        interval = max(0.5, min(limits.idle_timeout, limits.handshake_lifetime) / 4)
        # Stalled handshakes are found from the front of the half-open table
        # (cheap), more often than the full pass over every session.
        stall_interval = max(0.1, min(interval, limits.handshake_stall_timeout / 4))
        self._sweeper = self._loop.call_later(stall_interval, self._sweep, interval)

    def _sweep(self, full_interval: float = 0.0) -> None:
        now = self._loop.time()
        try:
            for peer in list(self._admission.stalled(now)):
                self._drop_handshake(peer, "handshakes_stalled")
            if now >= self._next_full_sweep:
                self._next_full_sweep = now + full_interval
                self._full_sweep(now)
            if now >= self._next_summary:
                self._log_summary(now)
        except Exception as exc:
            self._internal_error(exc, "the sweep of idle sessions and handshakes")
        finally:
            if self._transport is not None and not self._transport.is_closing():
                self._schedule_sweep()

    def _log_summary(self, now: float) -> None:
        """One info line per ``SUMMARY_INTERVAL`` with what the handshakes did
        since the last one (the per-session lines are at debug), none when
        nothing happened."""
        self._next_summary = now + SUMMARY_INTERVAL
        counters, resumption = self._counters, self.config.resumption
        resumed = (
            0
            if resumption is None
            else resumption.counters["resumed_ticket"] + resumption.counters["resumed_session_id"]
        )
        current = (counters["handshakes_completed"], resumed, counters["handshakes_failed"])
        last, self._summarized = self._summarized, current
        if current == last or not logger.isEnabledFor(logging.INFO):
            return
        completed, resumed, failed = (c - p for c, p in zip(current, last, strict=True))
        logger.info(
            "%d handshakes completed (%d resumed) and %d failed in the last %.0f s; "
            "%d sessions established",
            completed,
            resumed,
            failed,
            SUMMARY_INTERVAL,
            self._established,
        )

    def _full_sweep(self, now: float) -> None:
        for peer in self._live():
            if peer.forgotten:
                continue
            if peer.conn.established:
                try:
                    conn = peer.conn
                    if isinstance(conn, SettledConnection) and conn.holds_final_flight:
                        # Application data the table opened (batched) proves the
                        # peer has our Finished: the flight goes before its 2MSL.
                        active = None
                        if peer.table_id is not None:
                            active = self._table.last_active(peer.table_id)
                        conn.expire_final_flight(now, active)
                    self._refresh_activity(peer)
                    idle = now - peer.session.last_activity > self.limits.idle_timeout
                except Exception as exc:
                    self._internal_error(exc, peer.addr, peer)
                    continue
                if idle:
                    self._counters["sessions_idle_closed"] += 1
                    self._close_and_forget(peer)
            elif now - peer.started > self.limits.handshake_lifetime:
                self._drop_handshake(peer, "handshakes_expired")
        self._admission.prune(now)
        if self._gate.hello_verify_limit is not None:
            self._gate.hello_verify_limit.prune(now)


def _as_bytes(prefix: Hashable) -> bytes:
    """A prefix key (:func:`dtlsfast.source_budget.prefix_key`) as the bytes
    that the reassembly budget charges."""
    return prefix if isinstance(prefix, bytes) else repr(prefix).encode()


def _authenticated(conn: DtlsConnection | SettledConnection) -> int | None:
    """A count that grows when a datagram brings the peer's authenticated
    records, or None during the handshake (where everything counts): a
    forger's records leave it as it was, so they do not keep an idle session
    alive."""
    if isinstance(conn, DtlsConnection):
        # The state, not the established property: no call.
        return conn.records.advances if conn.state is State.ESTABLISHED else None
    return conn.authenticated


def _resumed(conn: DtlsConnection | SettledConnection) -> str | None:
    """How a handshake that just completed resumed its session, if it did."""
    return conn.resumed if isinstance(conn, DtlsConnection) else None


def _advances(conn: DtlsConnection | SettledConnection) -> int:
    """Authenticated records newer than every one before (RFC 9146 §6)."""
    if isinstance(conn, DtlsConnection):
        return conn.records.advances
    return conn.advances


def _server_resumption(
    resumption: ServerResumption | bool, ticket_key_file: str | Path | None
) -> ServerResumption | None:
    """serve()'s ``resumption`` and ``ticket_key_file`` as the configuration's."""
    if isinstance(resumption, ServerResumption):
        if ticket_key_file is not None:
            raise ConfigurationError(
                "give ticket_key_file or a ServerResumption (with its ticket_keys), not both"
            )
        return resumption
    if not resumption:
        if ticket_key_file is not None:
            raise ConfigurationError("ticket_key_file needs resumption enabled")
        return None
    keys = None if ticket_key_file is None else TicketKeys.from_file(ticket_key_file)
    return ServerResumption(ticket_keys=keys)


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
    require_extended_master_secret: bool = False,
    reveal_unknown_psk_identity: bool = False,
    resumption: ServerResumption | bool = True,
    ticket_key_file: str | Path | None = None,
    state_file: str | Path | None = None,
    state_key_file: str | Path | None = None,
    state_reset: bool = False,
    session_store: SessionStore | None = None,
    state_save_interval: float = DEFAULT_INTERVAL,
    sock: socket.socket | None = None,
    connection_id_prefix: bytes = b"",
    cookie_secret_seed: bytes | None = None,
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

    ``require_extended_master_secret=True`` refuses clients that do not offer
    the extended master secret (RFC 7627). An unknown PSK identity goes on
    with a random key and fails like a wrong key (RFC 4279 §2), so identities
    cannot be enumerated; ``reveal_unknown_psk_identity=True`` sends the
    unknown_psk_identity alert instead (for debugging). Either way
    ``counters["unknown_psk_identities"]`` counts them.

    ``resumption`` (on by default): clients may resume their sessions with
    an abbreviated handshake, by session ID (a cache of 10,000 sessions for
    an hour) or by RFC 5077 ticket. Tickets are sealed under keys derived
    from ``ticket_key_file`` (created with a fresh secret, mode 0600, if
    missing), so that servers sharing the file resume each other's sessions;
    without it, under a random key that dies with the process. Pass a
    :class:`~dtlsfast.resumption.ServerResumption` to choose the cache size,
    lifetime and ticket keys, or False for full handshakes only.

    ``state_file``: keep the established sessions in this SQLite file
    (:mod:`dtlsfast.store`), encrypted under a key derived from
    ``state_key_file`` (created when missing; default ``ticket_key_file``
    if given, else ``STATE_FILE.key``),
    saved every ``state_save_interval`` seconds and by ``close()``, and
    restored at start so that peers carry on with no handshake. A file that
    cannot be used raises :class:`~dtlsfast.exceptions.StateFileError`;
    ``state_reset=True`` moves it aside and starts empty. ``session_store``
    puts them in any :class:`~dtlsfast.store.SessionStore` instead.

    For several processes on one port (:mod:`dtlsfast.workers`): ``sock``, a
    bound UDP socket to serve instead of binding ``host:port`` (the server
    owns it from then on); ``connection_id_prefix``, the first bytes of every
    CID (shorter than the CID); ``cookie_secret_seed``, at least 32 random
    bytes from which every process holding them derives the same rotating
    cookie secrets.
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
        "require_extended_master_secret": require_extended_master_secret,
        "reveal_unknown_psk_identity": reveal_unknown_psk_identity,
    }
    if mtu is not None:
        kwargs["mtu"] = mtu
    if trusted_public_keys is not None:
        kwargs["trusted_public_keys"] = trusted_public_keys
    if groups is not None:
        kwargs["groups"] = tuple(groups)
    kwargs["resumption"] = _server_resumption(resumption, ticket_key_file)
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

    length = config.connection_id_length
    if connection_id_prefix and (length is None or len(connection_id_prefix) >= length):
        raise ConfigurationError(
            f"connection_id_prefix ({len(connection_id_prefix)} bytes) needs connection_id=True "
            f"and a longer connection_id_length (now {length})"
        )
    state = open_server_state(
        state_file,
        state_key_file,
        session_store,
        # The ticket key file encrypts the state when it is the only key file.
        fallback_key_file=ticket_key_file,
        start_empty=state_reset,
        interval=state_save_interval,
    )

    def make_server() -> DtlsServer:
        server = DtlsServer(
            handler,
            config,
            limits or ServerLimits(),
            cookie_secret_lifetime,
            state,
            cookie_secret_seed,
        )
        server.connection_id_prefix = bytes(connection_id_prefix)
        return server

    try:
        if batch_io or (batch_io is None and backend == "rust"):
            server = make_server()
            opened = await open_batch_transport(
                server, host, port, reuse_port=reuse_port, sock=sock
            )
            if opened is not None:
                return server
            if batch_io:
                raise ConfigurationError(
                    "batch_io=True needs recvmmsg/sendmmsg (Linux); leave batch_io=None to fall "
                    "back to asyncio's transport"
                )
        _, protocol = await open_datagram_endpoint(
            make_server, local_addr=(host, port), reuse_port=reuse_port, sock=sock
        )
    except BaseException:
        if state is not None:
            # No socket (or a restore that failed): the file stays as it was.
            state.close(asyncio.get_running_loop().time(), save=False)
        raise
    return protocol


__all__ = ["DtlsServer", "ServerLimits", "SessionListener", "serve"]
