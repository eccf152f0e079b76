"""Hand-built records and handshake messages for the attack tests, and small
helpers to drive one sans-I/O connection with them (RFC 6347 §4.1 record
header, §4.2.2 handshake header)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dtlsfast.backend import load_backend
from dtlsfast.config import DtlsConfiguration
from dtlsfast.connection import DtlsConnection
from dtlsfast.events import AlertReceived, ConnectionClosed, Event
from dtlsfast.handshake.constants import DTLS_1_2, ContentType, HandshakeType

BACKEND = load_backend("rust")


def record(ctype: int, epoch: int, seq: int, body: bytes, version: int = DTLS_1_2) -> bytes:
    """One plaintext record (13-byte header, RFC 6347 §4.1)."""
    return bytes(BACKEND.encode_record(ctype, version, epoch, seq, body))


def fragment(
    msg_type: int, message_seq: int, body: bytes = b"", length: int | None = None
) -> bytes:
    """One handshake fragment at offset 0 (12-byte header, RFC 6347 §4.2.2)."""
    total = len(body) if length is None else length
    return (
        bytes([msg_type])
        + total.to_bytes(3, "big")
        + message_seq.to_bytes(2, "big")
        + (0).to_bytes(3, "big")
        + len(body).to_bytes(3, "big")
        + body
    )


def records_of(datagram: bytes) -> list[tuple[int, int, int, bytes]]:
    """``(content type, epoch, sequence number, fragment)`` of each record."""
    return [(r[0], r[2], r[3], bytes(r[4])) for r in BACKEND.parse_records(datagram)]


def client_hello_message(config: DtlsConfiguration) -> bytes:
    """The first ClientHello that a client with ``config`` sends (whole message)."""
    client = DtlsConnection(config, peer=("127.0.0.1", 5684))
    client.connect(0.0)
    [datagram] = client.datagrams_to_send(0.0)
    [(_, _, _, message)] = records_of(datagram)
    assert message[0] == HandshakeType.CLIENT_HELLO
    return message


def with_message_seq(message: bytes, message_seq: int) -> bytes:
    return message[:4] + message_seq.to_bytes(2, "big") + message[6:]


def hello_datagram(config: DtlsConfiguration, *, record_seq: int, message_seq: int) -> bytes:
    message = with_message_seq(client_hello_message(config), message_seq)
    return record(ContentType.HANDSHAKE, 0, record_seq, message)


@dataclass
class Drained:
    """What a connection sent and reported since the last drain."""

    datagrams: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def sent_bytes(self) -> int:
        return sum(len(d) for d in self.datagrams)

    @property
    def alerts_sent(self) -> list[tuple[int, int]]:
        """(level, description) of the plaintext alerts sent (epoch 0)."""
        return [
            (body[0], body[1])
            for d in self.datagrams
            for ctype, epoch, _, body in records_of(d)
            if ctype == ContentType.ALERT and epoch == 0
        ]

    @property
    def closed(self) -> ConnectionClosed | None:
        return next((e for e in self.events if isinstance(e, ConnectionClosed)), None)

    @property
    def alerts_received(self) -> list[tuple[int, int]]:
        return [(e.level, e.description) for e in self.events if isinstance(e, AlertReceived)]


def drain(conn: object, now: float = 0.0) -> Drained:
    """Everything ``conn`` (a DtlsConnection or SettledConnection) queued."""
    out = Drained(list(conn.datagrams_to_send(now)))  # type: ignore[attr-defined]
    while (event := conn.next_event()) is not None:  # type: ignore[attr-defined]
        out.events.append(event)
    return out
