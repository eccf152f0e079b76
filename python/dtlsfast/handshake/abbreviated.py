"""The abbreviated handshake and session tickets, both sides (RFC 5246 §7.3,
RFC 6347 §4.2.4, RFC 5077 §3, RFC 7627 §5.3).

Steps of :class:`~dtlsfast.connection.DtlsConnection`'s state machine: the
connection calls these where a resumed handshake departs from a full one.

Abbreviated handshake, after the cookie exchange (the server has no state
before it)::

    ClientHello (session_id, session_ticket)  ->
                  <- ServerHello (same session_id) [NewSessionTicket]
                     ChangeCipherSpec, Finished
    ChangeCipherSpec, Finished                ->

The server's flight waits for an answer with the handshake's timers
(RFC 6347 §4.2.4); a repeated ClientHello gets it again. The client's last
flight has no timer: a repeat of the server's ServerHello gets it again. The
keys come from the saved master secret and the two new randoms (RFC 5246
§6.3). A full handshake issues the session: a session ID the server
caches, or a NewSessionTicket just before its ChangeCipherSpec (RFC 5077
§3.3) to a client that sent the session_ticket extension.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.constants import AlertDescription, HandshakeType
from dtlsfast.handshake.suites import SUITES_BY_CODE
from dtlsfast.resumption.saved_session import SavedSession, decode_new_session_ticket
from dtlsfast.resumption.server_resumption import (
    Resumable,
    ServerResumption,
    encode_new_session_ticket,
)
from dtlsfast.resumption.session_state import (
    MAX_LIFETIME,
    ResumptionState,
    client_refusal,
)

if TYPE_CHECKING:
    from dtlsfast.connection import DtlsConnection

#: Lifetime a client assumes for a session whose server gave no hint.
DEFAULT_CLIENT_LIFETIME = 7200


# ------------------------------------------------------------- server


def server_plan_session(conn: DtlsConnection, hello: Any, message: bytes) -> bool:
    """On a ClientHello (transcript begun): resume the session it offers
    and queue the abbreviated flight (True), or choose what the full
    handshake issues (False)."""
    resumption = conn.config.resumption
    if resumption is None:
        return False
    found = None
    ticket = hello.session_ticket
    if ticket or hello.session_id:
        # Only a hello that offers a session has one to look up (a full
        # handshake's usually offers an empty ticket at most).
        lookup = conn.config.psk_lookup
        found = resumption.find(
            session_id=hello.session_id,
            ticket=ticket,
            offered_suites=hello.cipher_suites,
            accepted_suites=[s.code for s in conn.config.cipher_suites],
            client_offers_ems=hello.extended_master_secret,
            require_ems=conn.config.require_extended_master_secret,
            identity_known=lambda identity: lookup is not None and lookup(identity) is not None,
            needs_peer_key=needs_peer_key(conn),
        )
    if found is None:
        conn._session_id = resumption.new_session_id()
        conn._ticket_promised = resumption.issues_tickets(ticket is not None)
        return False
    server_resume(conn, hello, found)
    return True


def needs_peer_key(conn: DtlsConnection) -> bool:
    """A session resumed here must carry the client's key (client_auth="required")."""
    return conn.config.client_auth == "required"


def server_resume(conn: DtlsConnection, hello: Any, found: Resumable) -> None:
    state = found.state
    suite = SUITES_BY_CODE[state.cipher_suite]
    conn.cipher_suite = suite
    conn.extended_master_secret = state.extended_master_secret
    conn.psk_identity = state.psk_identity
    restore_peer(conn, state)
    conn._resumed = found.via
    conn._session_id = hello.session_id
    conn._ticket_promised = found.renew_ticket
    cid = hello.connection_id if conn._offered_cid is not None else None
    limit = hello.record_size_limit
    if limit is not None:
        conn.peer_record_size_limit = limit  # RFC 8449 §4, as in a full handshake
    reneg = hello.renegotiation_info
    secure_reneg = (
        reneg is not None or _connection.EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites
    )
    conn._queue_message(
        conn._backend.encode_server_hello(
            conn._send_seq,
            state.version,
            conn._server_random,
            conn._session_id,
            suite.code,
            renegotiation_info=b"" if secure_reneg else None,
            extended_master_secret=state.extended_master_secret,
            record_size_limit=None if limit is None else _connection.MAX_PLAINTEXT,
            connection_id=None if cid is None else conn._offered_cid,
            session_ticket=conn._ticket_promised,
        )
    )
    if conn._ticket_promised:
        resumption = conn.config.resumption
        assert resumption is not None
        queue_new_session_ticket(conn, state, resumption)
    conn._master = state.master_secret
    install_resumed_keys(conn)
    conn._queue_change_cipher_spec_and_finished(b"server finished")
    conn.state = _connection.State.SERVER_WAIT_CHANGE_CIPHER_SPEC


def server_finish_abbreviated(conn: DtlsConnection, body: bytes, message: bytes) -> None:
    """The client's Finished ends an abbreviated handshake: nothing more
    to send, and no earlier epoch to keep."""
    conn._check_peer_finished(message, b"client finished")  # and adds it
    conn._flight = []
    conn._complete()
    conn.records.forget_previous_epochs()


def server_issue_session(conn: DtlsConnection, resumption: ServerResumption) -> None:
    """Before the server's last flight of a full handshake: queue the
    promised NewSessionTicket, or cache the session under its ID
    (``resumption``: the configuration's, which the caller read). A session
    that cannot be kept (a peer identity, key or chain too large for a
    state) is counted; a promised ticket is then empty."""
    assert conn.cipher_suite is not None
    key = conn.peer_public_key
    certificates = conn.peer_certificates
    try:
        # A PSK session has neither key nor chain: nothing to encode. Of a
        # chain, only the leaf is kept.
        state: ResumptionState | None = resumption.state_for(
            conn._master,
            conn.cipher_suite.code,
            conn.extended_master_secret,
            conn.psk_identity,
            conn.peer_certificate_type,
            None
            if key is None
            else key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
            (certificates[0].public_bytes(Encoding.DER),) if certificates else (),
        )
    except ConfigurationError:
        resumption.counters["sessions_not_resumable"] += 1
        state = None
    if conn._ticket_promised:
        queue_new_session_ticket(conn, state, resumption)
    elif state is not None:
        resumption.remember(conn._session_id, state)


def queue_new_session_ticket(
    conn: DtlsConnection, state: ResumptionState | None, resumption: ServerResumption
) -> None:
    # RFC 5077 §3.3: a server that promised a ticket and cannot issue
    # one sends an empty ticket.
    hint, ticket = (0, b"") if state is None else resumption.seal(state)
    conn._queue_message(
        conn._backend.encode_handshake(
            HandshakeType.NEW_SESSION_TICKET,
            conn._send_seq,
            encode_new_session_ticket(hint, ticket),
        )
    )


def restore_peer(conn: DtlsConnection, state: ResumptionState) -> None:
    """The peer's authenticated key and chain, as the full handshake left them."""
    if state.peer_public_key is None and state.peer_certificate_type is None:
        return  # a PSK session
    from cryptography import x509

    from dtlsfast.handshake.cert_types import CertificateType
    from dtlsfast.handshake.certificates import load_spki

    if state.peer_public_key is not None:
        conn.peer_public_key = load_spki(state.peer_public_key)
    if state.peer_certificate_type is not None:
        conn.peer_certificate_type = CertificateType(state.peer_certificate_type)
    if state.peer_certificates:
        conn.peer_certificates = [
            x509.load_der_x509_certificate(der) for der in state.peer_certificates
        ]


# ------------------------------------------------------------- client


def client_hello_session(conn: DtlsConnection) -> tuple[bytes, tuple[tuple[int, bytes], ...]]:
    """The session_id and session_ticket extension of our ClientHello:
    the saved session's, if it is still usable, and a request for a
    ticket if we take them."""
    offer = conn._offer
    if offer is not None and not offer.usable(time.time()):
        conn._offer = offer = None
    extensions: tuple[tuple[int, bytes], ...] = ()
    if offer is not None and offer.ticket is not None:
        extensions = ((_SESSION_TICKET, offer.ticket),)
    elif conn.config.session_tickets:
        extensions = _TICKET_REQUEST
    conn._session_id = b"" if offer is None else offer.offered_session_id()
    return conn._session_id, extensions


def client_resumes(conn: DtlsConnection, session_id: bytes, ticket_extension: bool) -> bool:
    """After the ServerHello's checks: the server resumes our saved
    session if it echoed the session_id we offered (RFC 5246 §7.4.1.3,
    RFC 5077 §3.4). Installs its keys and waits for the server's
    ChangeCipherSpec. False: a full handshake, which issues a ticket if
    the server sent the session_ticket extension."""
    conn._ticket_promised = ticket_extension
    offer = conn._offer
    offered = conn._session_id
    if offer is None or not session_id or session_id != offered:
        conn._session_id = session_id
        return False
    state = offer.state
    assert conn.cipher_suite is not None
    if conn.cipher_suite.code != state.cipher_suite:
        raise _connection._Abort(
            AlertDescription.ILLEGAL_PARAMETER,
            "the server resumed our session with another cipher suite (RFC 5246 §7.4.1.3)",
        )
    problem = client_refusal(state, server_sent_ems=conn.extended_master_secret)
    if problem is not None:
        raise _connection._Abort(AlertDescription.HANDSHAKE_FAILURE, problem + " (RFC 7627 §5.3)")
    conn._resumed = "ticket" if offer.ticket is not None else "session_id"
    conn.psk_identity = state.psk_identity
    conn._master = state.master_secret
    install_resumed_keys(conn)
    conn.state = _connection.State.CLIENT_WAIT_CHANGE_CIPHER_SPEC
    return True


def client_on_new_session_ticket(conn: DtlsConnection, body: bytes, message: bytes) -> None:
    if not conn._ticket_promised or conn._new_ticket is not None:
        raise _connection._Abort(AlertDescription.UNEXPECTED_MESSAGE, "unexpected NewSessionTicket")
    hint, ticket = decode_new_session_ticket(body)
    conn._transcript.add(message)
    # An empty ticket: the server chose not to issue one (RFC 5077 §3.3).
    conn._new_ticket = (hint, ticket)


def client_finish_abbreviated(conn: DtlsConnection, body: bytes, message: bytes) -> None:
    """The server's Finished came first: answer with ours and complete.
    The flight stays for a repeat of the server's (its ServerHello)."""
    conn._check_peer_finished(message, b"server finished")  # and adds it
    conn._queue_change_cipher_spec_and_finished(b"client finished")
    conn._complete()


def saved_session(conn: DtlsConnection) -> SavedSession | None:
    """Client side, once established: what to pass to ``connect(...,
    resume=...)`` to resume this session later, or None if the server
    offered neither a session ID nor a ticket, or the session cannot be kept
    (a PSK identity over ``MAX_IDENTITY_LENGTH`` bytes, as on the server).
    Holds the master secret."""
    # Once the handshake completed, closed or not: a close_notify leaves
    # the session resumable (RFC 5246 §7.2.1).
    if not conn.is_client or not conn.counters["handshakes"] or conn.cipher_suite is None:
        return None
    ticket: bytes | None = None
    lifetime = DEFAULT_CLIENT_LIFETIME
    if conn._new_ticket is not None and conn._new_ticket[1]:
        hint, ticket = conn._new_ticket
        lifetime = min(hint, MAX_LIFETIME) if hint else DEFAULT_CLIENT_LIFETIME
    elif conn._resumed is not None and conn._offer is not None:
        return conn._offer
    if not conn._session_id and ticket is None:
        return None
    try:
        state = ResumptionState(
            master_secret=conn._master,
            cipher_suite=conn.cipher_suite.code,
            extended_master_secret=conn.extended_master_secret,
            created=math.floor(time.time()),
            lifetime=lifetime,
            psk_identity=conn.psk_identity,
        )
    except ConfigurationError:
        return None  # too large to keep: the session is used, never resumed
    # With a ticket, the server's session ID means nothing (RFC 5077 §3.4).
    return SavedSession(state, b"" if ticket is not None else conn._session_id, ticket)


# --------------------------------------------------------------- both


def install_resumed_keys(conn: DtlsConnection) -> None:
    """The key block of the saved master secret and this handshake's
    randoms (RFC 5246 §6.3)."""
    suite = conn.cipher_suite
    assert suite is not None
    read_cipher, write_cipher = conn._backend.key_block(
        suite.prf_hash,
        suite.aead,
        conn._master,
        conn._client_random,
        conn._server_random,
        conn.config.is_client,
    )
    conn._install_keys(read_cipher, write_cipher)


_SESSION_TICKET = 35  # ExtensionType.SESSION_TICKET, RFC 5077 §3.2
#: An empty session_ticket extension: a request for a ticket (RFC 5077 §3.2).
_TICKET_REQUEST: tuple[tuple[int, bytes], ...] = ((_SESSION_TICKET, b""),)


__all__ = [
    "client_finish_abbreviated",
    "client_hello_session",
    "client_on_new_session_ticket",
    "client_resumes",
    "install_resumed_keys",
    "queue_new_session_ticket",
    "restore_peer",
    "saved_session",
    "server_finish_abbreviated",
    "server_issue_session",
    "server_plan_session",
    "server_resume",
]

# Last, for the import cycle (dtlsfast.connection imports this module and
# reads its functions at import time): bound once here rather than by an
# import statement inside each function, which costs about a microsecond per
# call even with the module loaded.
import dtlsfast.connection as _connection  # noqa: E402
