"""The handshake transcript that Finished and the extended master secret hash.

DTLS hashes each handshake message as if it had been sent unfragmented, with
its 12-byte DTLS header: message_seq as sent, fragment_offset 0 and
fragment_length equal to length (RFC 6347 §4.2.6). The first ClientHello and
the HelloVerifyRequest are left out (RFC 6347 §4.2.1): the state machine calls
:meth:`HandshakeTranscript.reset` when a HelloVerifyRequest restarts the hello.
The raw bytes are kept, so the hash can be chosen once the suite is known
(RFC 5246 §7.4.9; RFC 7627 §3 session_hash).
"""

from __future__ import annotations

import hashlib

from dtlsfast.exceptions import ConfigurationError, DecodeError, LocalProtocolError
from dtlsfast.handshake.messages import (
    HANDSHAKE_HEADER,
    HandshakeHeader,
    encode_handshake_header,
    parse_handshake_header,
)
from dtlsfast.handshake.prf import PRF_HASHES


def whole_message(message: bytes) -> bytes:
    """``message`` as the transcript keeps it: one whole message, its
    fragment fields normalised; LocalProtocolError if it is not whole."""
    try:
        header = parse_handshake_header(message)
    except DecodeError as exc:
        raise LocalProtocolError(f"not a handshake message: {exc}") from None
    body = bytes(message[HANDSHAKE_HEADER:])
    if header.fragment_offset != 0 or header.length != len(body):
        raise LocalProtocolError(
            f"the transcript takes whole messages: offset {header.fragment_offset}, "
            f"length {header.length}, {len(body)} body bytes"
        )
    if header.fragment_length != header.length:
        header = HandshakeHeader(
            header.msg_type, header.length, header.message_seq, 0, header.length
        )
        return encode_handshake_header(header) + body
    return bytes(message)


class HandshakeTranscript:
    """Accumulates whole handshake messages (header + body) in order."""

    def __init__(self) -> None:
        self._messages: list[bytes] = []

    def add(self, message: bytes) -> None:
        """Append one whole message.

        ``message`` is the 12-byte header plus the complete body. The header's
        fragment fields are normalised to offset 0 and fragment_length =
        length, so a reassembled message that kept its first fragment's header
        hashes correctly. LocalProtocolError if the body is not complete.
        """
        self._messages.append(whole_message(message))

    def digest(self, hash_name: str) -> bytes:
        """The hash of every message added so far (``"sha256"`` or ``"sha384"``)."""
        if hash_name not in PRF_HASHES:
            raise ConfigurationError(
                f"unsupported transcript hash {hash_name!r}; use one of {', '.join(PRF_HASHES)}"
            )
        h = hashlib.new(hash_name)
        for message in self._messages:
            h.update(message)
        return h.digest()

    def reset(self) -> None:
        """Forget everything (after a HelloVerifyRequest, RFC 6347 §4.2.1)."""
        self._messages.clear()

    def data(self) -> bytes:
        """All messages so far, concatenated (for tests and debugging)."""
        return b"".join(self._messages)

    @property
    def messages(self) -> tuple[bytes, ...]:
        """The messages added so far, normalised, in order."""
        return tuple(self._messages)

    def __len__(self) -> int:
        return len(self._messages)


__all__ = ["HandshakeTranscript", "whole_message"]
