"""``dtlsfast serve`` with the ESP-IDF example's public key (issue 12).

Its default key, ``esp32c3_key``, is printed in every copy of the example:
bound to an address other hosts reach (the default binds every address), the
server warns and says how to give a key; on loopback it stays quiet.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import free_udp_port, serve_process

WARNING = "public PSK key 'esp32c3_key'"


@pytest.mark.parametrize(
    ("bind", "options", "warned"),
    [
        ("0.0.0.0", (), True),
        ("::", (), True),
        ("127.0.0.1", (), False),
        ("::1", (), False),
        ("0.0.0.0", ("--psk-key", "a key of our own"), False),
    ],
    ids=["0.0.0.0", "::", "127.0.0.1", "::1", "own-key"],
)
async def test_example_key_warning(
    tmp_path: Path, bind: str, options: tuple[str, ...], warned: bool
) -> None:
    port = free_udp_port("::1" if ":" in bind else "127.0.0.1")
    log_path = tmp_path / "serve.log"
    async with serve_process(log_path, 0, port, "--bind", bind, *options):
        pass
    log = log_path.read_text()
    lines = [line for line in log.splitlines() if WARNING in line]
    print(f"\n[serve --bind {bind} {' '.join(options)}] {lines[0] if lines else 'no warning'}")
    assert len(lines) == int(warned), log
    if warned:
        assert " WARNING " in lines[0]
        assert "--psk-key" in lines[0] and "--psk-file" in lines[0]
