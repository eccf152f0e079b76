"""The handshake transcript with its Finished messages: the pure-Python twin
of the Rust ``HandshakeTranscript`` (rust/transcript.rs), on
:mod:`dtlsfast.handshake.transcript`.

RFC 5246 §7.4.9: verify_data = PRF(master, label, Hash(handshake_messages)),
over the messages so far. ``add_finished`` makes our Finished (header with
its message_seq, RFC 6347 §4.2.2) and adds it; ``check_finished`` compares
the peer's in constant time and adds it only if it verifies. Which label,
which alert and when stay the caller's.
"""

from __future__ import annotations

import hmac

from dtlsfast.exceptions import ConfigurationError, LocalProtocolError
from dtlsfast.handshake import prf as _prf
from dtlsfast.handshake import transcript as _transcript
from dtlsfast.handshake.constants import HandshakeType
from dtlsfast.handshake.messages import HANDSHAKE_HEADER, Finished
from dtlsfast.pure._args import uint
from dtlsfast.pure.hs_codec import _u16, encode_handshake


class HandshakeTranscript(_transcript.HandshakeTranscript):
    """:class:`dtlsfast.handshake.transcript.HandshakeTranscript` and the
    Finished messages over it."""

    def add_finished(
        self, hash_name: str, master: bytes, label: bytes, message_seq: int, length: int = 12
    ) -> bytes:
        """Our Finished message with ``message_seq`` over the messages so
        far, added to them: what the flight sends."""
        length = uint(length, "length", _prf.MAX_PRF_OUTPUT)
        seq = _u16(message_seq, "message_seq")
        verify_data = self._verify_data(hash_name, master, label, length)
        message = encode_handshake(HandshakeType.FINISHED, seq, verify_data)
        self._messages.append(message)
        return message

    def check_finished(
        self, hash_name: str, master: bytes, label: bytes, message: bytes, length: int = 12
    ) -> bool:
        """Whether the peer's Finished ``message`` (header and body) verifies
        over the messages so far, compared in constant time; added to them
        if it does. DecodeError for an empty body, LocalProtocolError if
        ``message`` is not one whole Finished."""
        length = uint(length, "length", _prf.MAX_PRF_OUTPUT)
        expected = self._verify_data(hash_name, master, label, length)
        whole = _transcript.whole_message(message)
        if whole[0] != HandshakeType.FINISHED:
            raise LocalProtocolError(f"not a Finished message: handshake type {whole[0]}")
        received = Finished.decode(whole[HANDSHAKE_HEADER:]).verify_data
        if not hmac.compare_digest(expected, received):
            return False
        self._messages.append(whole)
        return True

    def _verify_data(self, hash_name: str, master: bytes, label: bytes, length: int) -> bytes:
        handshake_hash = self.digest(hash_name)  # ConfigurationError for an unknown hash
        if length == 0:
            raise ConfigurationError("verify_data is 1..=65536 bytes, not 0")
        return _prf.verify_data(hash_name, master, label, handshake_hash, length)


__all__ = ["HandshakeTranscript"]
