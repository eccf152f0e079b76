"""The handshake messages captured from OpenSSL, GnuTLS, libcoap and Mbed TLS
(rust/hs_codec/captures.rs, where each one's source and command are named),
read from that one file so the Rust and Python tests share them."""

from __future__ import annotations

import re
from pathlib import Path

CAPTURES = Path(__file__).resolve().parents[2] / "rust" / "hs_codec" / "captures.rs"

_CONST = re.compile(r'pub const (\w+): &str =\s*"([0-9a-f]*)";')

#: name -> whole handshake message (header included), e.g. VECTORS["MBEDTLS_CLIENT_HELLO"].
VECTORS: dict[str, bytes] = {
    name: bytes.fromhex(value) for name, value in _CONST.findall(CAPTURES.read_text())
}

CLIENT_HELLOS = {name: m for name, m in VECTORS.items() if m[0] == 1}
SERVER_HELLOS = {name: m for name, m in VECTORS.items() if m[0] == 2}
