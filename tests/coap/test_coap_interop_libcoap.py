"""Interop with libcoap (the library behind the ESP-IDF example) on loopback:
``coap-client-notls`` against CoapServer, CoapClient against
``coap-server-notls``. Every peer runs under ``timeout`` and is stopped by PID."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))
from peers import free_udp_port

from dtlsfast.coap import (
    CoapClient,
    CoapServer,
    Code,
    ContentFormat,
    LightResource,
    Request,
    Resource,
    Response,
)

pytestmark = pytest.mark.interop

CLIENT = shutil.which("coap-client-notls")
SERVER = shutil.which("coap-server-notls")


class Store(Resource):
    """Holds whatever was PUT; big enough to need Block1 and Block2."""

    observable = True

    def __init__(self) -> None:
        self.body = bytes(i % 26 + 97 for i in range(3000))

    async def render_get(self, request: Request) -> Response:
        return Response(Code.CONTENT, self.body, ContentFormat.TEXT_PLAIN)

    async def render_put(self, request: Request) -> Response:
        self.body = request.payload
        return Response(Code.CHANGED)


async def run(*args: str, limit: float = 15) -> tuple[int, str, str]:
    """Run a peer under ``timeout``; stop it by PID if it outlives ``limit``."""
    proc = await asyncio.create_subprocess_exec(
        "timeout",
        str(limit),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit + 5)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.fixture
async def ours() -> AsyncIterator[tuple[CoapServer, str]]:
    if CLIENT is None:
        pytest.fail("coap-client-notls is missing: apt-get install libcoap3-bin")
    server = CoapServer()
    server.add_resource("light", LightResource())
    server.add_resource("store", Store())
    listener = await server.listen_udp("127.0.0.1", 0)
    async with server:
        yield server, f"coap://127.0.0.1:{listener.port}"


async def coap_client(*args: str) -> str:
    assert CLIENT is not None
    rc, out, err = await run(CLIENT, "-B", "5", *args)
    assert rc == 0, err
    return out.removesuffix("\n")  # coap-client ends its output with a newline


async def test_libcoap_get_put_get(ours: tuple[CoapServer, str]) -> None:
    _, base = ours
    assert await coap_client(f"{base}/light") == "off"
    assert await coap_client("-m", "put", "-e", "on", f"{base}/light") == ""
    assert await coap_client(f"{base}/light") == "on"
    assert await coap_client("-A", "50", f"{base}/light") == '{"on": true}'
    assert await coap_client("-N", "-m", "put", "-e", "toggle", f"{base}/light") == ""
    assert await coap_client("-N", f"{base}/light") == "off"


async def test_libcoap_response_codes(ours: tuple[CoapServer, str]) -> None:
    _, base = ours
    assert CLIENT is not None
    _, _, err = await run(CLIENT, "-B", "5", "-v", "6", f"{base}/nope")
    assert "4.04" in err
    _, _, err = await run(CLIENT, "-B", "5", "-v", "6", "-m", "put", "-e", "blink", f"{base}/light")
    assert "4.00" in err
    _, _, err = await run(CLIENT, "-B", "5", "-v", "6", "-A", "41", f"{base}/light")
    assert "4.06" in err
    _, _, err = await run(CLIENT, "-B", "5", "-v", "6", "-m", "delete", f"{base}/light")
    assert "4.05" in err


async def test_libcoap_well_known_core(ours: tuple[CoapServer, str]) -> None:
    _, base = ours
    out = await coap_client(f"{base}/.well-known/core")
    assert '</light>;rt="light";if="core.a";ct="0 50";obs;title="Light"' in out.split(",")
    assert "</store>;obs" in out.split(",")


async def test_libcoap_block2_and_block1(ours: tuple[CoapServer, str], tmp_path: Path) -> None:
    server, base = ours
    store = server.resources["store"]
    assert isinstance(store, Store)
    assert (await coap_client(f"{base}/store")).encode() == store.body
    assert (await coap_client("-b", "64", f"{base}/store")).encode() == store.body
    upload = tmp_path / "upload.txt"
    upload.write_bytes(b"0123456789" * 500)
    await coap_client("-m", "put", "-f", str(upload), f"{base}/store")
    assert store.body == upload.read_bytes()
    await coap_client("-b", "128", "-m", "put", "-f", str(upload), f"{base}/store")
    assert store.body == upload.read_bytes()


async def test_libcoap_observe(ours: tuple[CoapServer, str]) -> None:
    server, base = ours
    assert CLIENT is not None
    observer = asyncio.create_task(run(CLIENT, "-B", "8", "-s", "3", f"{base}/light"))
    for _ in range(100):
        if server.observers("light"):
            break
        await asyncio.sleep(0.02)
    assert len(server.observers("light")) == 1
    await coap_client("-m", "put", "-e", "on", f"{base}/light")
    await asyncio.sleep(0.2)
    await coap_client("-m", "put", "-e", "toggle", f"{base}/light")
    rc, out, err = await observer
    assert rc == 0, err
    assert out == "offonoff\n"
    # libcoap deregisters when -s runs out (GET with Observe=1).
    assert server.observers("light") == []
    assert server.counters["notifications"] == 2


# -- CoapClient against libcoap's example server ------------------------------


@pytest.fixture
async def theirs() -> AsyncIterator[str]:
    if SERVER is None:
        pytest.fail("coap-server-notls is missing: apt-get install libcoap3-bin")
    port = free_udp_port()
    proc = await asyncio.create_subprocess_exec(
        "timeout",
        "60",
        SERVER,
        "-A",
        "127.0.0.1",
        "-p",
        str(port),
        "-d",
        "10",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"coap://127.0.0.1:{port}"
    try:
        async with CoapClient() as client:
            for _ in range(50):  # wait until it answers
                try:
                    await client.get(f"{base}/.well-known/core", timeout=0.3)
                    break
                except TimeoutError:
                    continue
        yield base
    finally:
        proc.terminate()
        await proc.wait()


async def test_client_against_libcoap(theirs: str) -> None:
    base = theirs
    async with CoapClient() as client:
        r = await client.get(f"{base}/.well-known/core", timeout=5)
        assert r.content_format == ContentFormat.LINK_FORMAT
        assert any(link.startswith("</time>") for link in r.payload.decode().split(","))
        r = await client.get(f"{base}/time", timeout=5)
        assert r.code == Code.CONTENT and r.payload
        r = await client.get(f"{base}/time", confirmable=False, timeout=5)
        assert r.code == Code.CONTENT and r.payload
        # 1500 bytes, sent block-wise (Block2, Size2, ETag).
        r = await client.get(f"{base}/example_data", timeout=5)
        assert len(r.payload) == 1500
        assert r.payload.startswith(b"a123456789b123456789")
        # With -d, PUT creates a resource.
        r = await client.put(f"{base}/light", b"on", content_format=0, timeout=5)
        assert r.code == Code.CREATED
        r = await client.put(f"{base}/light", b"off", content_format=0, timeout=5)
        assert r.code == Code.CHANGED
        assert (await client.get(f"{base}/light", timeout=5)).payload == b"off"
        # Block1 upload, read back with Block2.
        body = bytes(range(256)) * 12
        r = await client.put(f"{base}/blob", body, timeout=5)
        assert r.code == Code.CREATED
        assert (await client.get(f"{base}/blob", timeout=5)).payload == body
        r = await client.get(f"{base}/nope", timeout=5)
        assert r.code == Code.NOT_FOUND


async def test_client_observes_libcoap_time(theirs: str) -> None:
    async with CoapClient() as client:
        async with client.observe(f"{theirs}/time") as observation:
            notes = []
            async for note in observation:
                notes.append(note)
                if len(notes) == 3:
                    break
        assert all(n.code == Code.CONTENT for n in notes)
        seqs = [n.observe for n in notes]
        assert None not in seqs and seqs == sorted(seqs)  # type: ignore[type-var]
        # After deregistration, /time still answers plain GETs.
        assert (await client.get(f"{theirs}/time", timeout=5)).code == Code.CONTENT
