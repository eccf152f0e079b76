"""Third-party DTLS / CoAP peers on loopback, for the interop tests.

Everything here starts real programs from Debian's packages (``openssl``,
``gnutls-bin``, ``libcoap3-bin``), always wrapped in ``timeout``, always on
127.0.0.1, and always stopped by the process's own PID (never by name).

Servers are context managers (sync ``with`` and ``async with``); their stdout
and stderr go to files in a private temporary directory, so no pipe can fill.
Clients are coroutines (``asyncio.create_subprocess_exec``): the DTLS stack
under test usually runs in the same event loop as the test, and a blocking
``subprocess.run`` would deadlock it.

If a program is missing, :class:`PeerMissingError` says which Debian package
to install: interop tests fail then, they never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

LOCALHOST = "127.0.0.1"

PSK_IDENTITY = "CoAP"
PSK_HINT = "CoAP"
PSK_KEY = b"esp32c3_key"
PSK_KEY_HEX = PSK_KEY.hex()  # "657370333263335f6b6579": OpenSSL and GnuTLS take hex

#: program -> Debian package that ships it
DEBIAN_PACKAGES: dict[str, str] = {
    "timeout": "coreutils",
    "stdbuf": "coreutils",
    "openssl": "openssl",
    "gnutls-serv": "gnutls-bin",
    "gnutls-cli": "gnutls-bin",
    **{
        f"coap-{role}-{variant}": "libcoap3-bin"
        for role in ("client", "server")
        for variant in ("openssl", "gnutls", "notls")
    },
}

#: seconds between polls while waiting for readiness / output
_POLL = 0.02


class PeerError(RuntimeError):
    """A peer could not be run as asked."""


class PeerMissingError(PeerError):
    """A peer program is not installed."""


class PeerStartError(PeerError):
    """A peer server exited or never became ready."""


def require_binary(name: str) -> str:
    """Absolute path of ``name``, or :class:`PeerMissingError` naming the package."""
    path = shutil.which(name)
    if path is None:
        package = DEBIAN_PACKAGES.get(name, "?")
        raise PeerMissingError(
            f"{name!r} is not installed: `apt-get install {package}` "
            "(.ci/run installs the interop peers; interop tests never skip)"
        )
    return path


# --------------------------------------------------------------------------- ports


def _bindable(kind: socket.SocketKind, host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


#: Ports for servers the tests start by number: below Linux's ephemeral range
#: (32768-60999), so that no client socket of this or a concurrent run can be
#: given the port between the probe and the server's bind.
SERVER_PORTS = range(20000, 32768)


def free_port(kind: socket.SocketKind, host: str = LOCALHOST) -> int:
    """A port of ``kind`` that was free on ``host`` a moment ago, drawn at
    random from :data:`SERVER_PORTS`."""
    for _ in range(256):
        port = random.choice(SERVER_PORTS)
        if _bindable(kind, host, port):
            return port
    raise PeerError(f"no free port in {SERVER_PORTS} on {host} after 256 tries")


def free_udp_port(host: str = LOCALHOST) -> int:
    """A UDP port that was free on ``host`` a moment ago."""
    return free_port(socket.SOCK_DGRAM, host)


def free_udp_port_pair(host: str = LOCALHOST, *, tcp_too: bool = True, attempts: int = 64) -> int:
    """A port P with P and P+1 free on ``host``, for libcoap servers (coap P, coaps P+1).

    libcoap's server also listens on TCP P and TLS P+1, and it binds UDP with
    SO_REUSEADDR, so a clash on UDP goes unnoticed by it: ``tcp_too`` checks TCP
    too. Our probe sockets do not set SO_REUSEADDR, so they fail on any holder.
    """
    kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM) if tcp_too else (socket.SOCK_DGRAM,)
    for _ in range(attempts):
        port = free_udp_port(host)
        if port >= 65535:
            continue
        if all(_bindable(k, host, p) for k in kinds for p in (port, port + 1)):
            return port
    raise PeerError(f"no free port pair P, P+1 found on {host} after {attempts} attempts")


# --------------------------------------------------------------------------- suites


@dataclass(frozen=True)
class SuiteNames:
    """One cipher suite under each peer's spelling."""

    iana: str
    code: int
    openssl: str  #: ``-cipher`` value for s_client / s_server
    gnutls: str  #: ``--priority`` string selecting exactly this suite in DTLS 1.2
    gnutls_kx: str  #: key exchange as gnutls-cli's "- Description" prints it (prefix)
    gnutls_cipher: str  #: cipher as gnutls-cli's "- Description" prints it


def _gnutls_priority(kx: str, cipher: str) -> str:
    return f"NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+{kx}:-CIPHER-ALL:+{cipher}"


def _suite(iana: str, code: int, openssl: str, kx: str, cipher: str) -> SuiteNames:
    return SuiteNames(iana, code, openssl, _gnutls_priority(kx, cipher), kx, cipher)


SUITES: dict[str, SuiteNames] = {
    s.iana: s
    for s in (
        _suite("TLS_PSK_WITH_AES_128_CCM_8", 0xC0A8, "PSK-AES128-CCM8", "PSK", "AES-128-CCM-8"),
        _suite("TLS_PSK_WITH_AES_128_CCM", 0xC0A4, "PSK-AES128-CCM", "PSK", "AES-128-CCM"),
        _suite(
            "TLS_PSK_WITH_AES_128_GCM_SHA256", 0x00A8, "PSK-AES128-GCM-SHA256", "PSK", "AES-128-GCM"
        ),
        _suite(
            "TLS_PSK_WITH_AES_256_GCM_SHA384", 0x00A9, "PSK-AES256-GCM-SHA384", "PSK", "AES-256-GCM"
        ),
        _suite(
            "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
            0xCCAB,
            "PSK-CHACHA20-POLY1305",
            "PSK",
            "CHACHA20-POLY1305",
        ),
        _suite(
            "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
            0xCCAC,
            "ECDHE-PSK-CHACHA20-POLY1305",
            "ECDHE-PSK",
            "CHACHA20-POLY1305",
        ),
    )
}
PSK_SUITES: tuple[str, ...] = tuple(SUITES)

#: suites gnutls-cli cannot be the client for (IANA name -> why)
GNUTLS_CLI_BROKEN_SUITES: dict[str, str] = {
    "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256": (
        "gnutls-cli 3.7.9 completes the ECDHE_PSK handshake, then segfaults in print_info "
        "(gnutls_psk_server_get_username on a client session) before sending any data; "
        "gnutls-serv as the ECDHE_PSK server works"
    ),
}
_BY_OPENSSL = {s.openssl: s.iana for s in SUITES.values()}

#: gnutls priority offering every suite above (a server accepting them all)
GNUTLS_ALL_PSK_PRIORITY = (
    "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:+ECDHE-PSK:-CIPHER-ALL"
    ":+AES-128-CCM-8:+AES-128-CCM:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"
)
#: openssl cipher list offering every suite above
OPENSSL_ALL_PSK_CIPHERS = ":".join(s.openssl for s in SUITES.values())


def openssl_cipher(suite: str) -> str:
    """openssl ``-cipher`` name for an IANA suite name (or an openssl name, unchanged)."""
    return SUITES[suite].openssl if suite in SUITES else suite


def gnutls_priority(suite: str) -> str:
    """gnutls ``--priority`` string for an IANA suite name (or a priority, unchanged)."""
    return SUITES[suite].gnutls if suite in SUITES else suite


def iana_from_openssl(name: str | None) -> str | None:
    return None if name is None else _BY_OPENSSL.get(name)


def iana_from_gnutls(kx: str | None, cipher: str | None) -> str | None:
    if kx is None or cipher is None:
        return None
    for s in SUITES.values():
        # gnutls prints e.g. "(ECDHE-PSK-SECP256R1)": match the kx as a prefix.
        kx_ok = kx == s.gnutls_kx or kx.startswith(s.gnutls_kx + "-")
        if s.gnutls_kx == "PSK" and kx.startswith("ECDHE"):
            kx_ok = False
        if kx_ok and cipher == s.gnutls_cipher:
            return s.iana
    return None


# --------------------------------------------------------------------------- processes

_STARTED_LOCK = threading.Lock()
#: PID of each ``timeout`` wrapper we started and have not reaped -> description
_STARTED: dict[int, str] = {}


def _register(pid: int, what: str) -> None:
    with _STARTED_LOCK:
        _STARTED[pid] = what


def _unregister(pid: int) -> None:
    with _STARTED_LOCK:
        _STARTED.pop(pid, None)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc), empty if it is gone."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        with contextlib.suppress(OSError):
            kids.extend(
                int(k) for k in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            )
    return kids


def server_pid(wrapper: int) -> int:
    """The PID of the program a ``timeout`` wrapper runs (its only child)."""
    children = _children(wrapper)
    assert len(children) == 1, children
    return children[0]


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = _children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _kill_tree(pid: int) -> None:
    """SIGKILL the wrapped program(s) first, then the ``timeout`` wrapper, by PID."""
    for p in reversed(_descendants(pid)):
        _signal(p, signal.SIGKILL)
    _signal(pid, signal.SIGKILL)


def live_started_processes() -> dict[int, str]:
    """Peers started by this module that are still running (PID -> description)."""
    with _STARTED_LOCK:
        items = dict(_STARTED)
    alive: dict[int, str] = {}
    for pid, what in items.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == os.getpid() and state != "Z":
            alive[pid] = what
    return alive


def reap_started_processes(only: Collection[int] | None = None) -> dict[int, str]:
    """Kill (by PID) every peer this module started that still runs (or those of ``only``
    among them); return them."""
    alive = live_started_processes()
    if only is not None:
        alive = {pid: what for pid, what in alive.items() if pid in only}
    for pid in alive:
        _kill_tree(pid)
    for pid in alive:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        _unregister(pid)
    return alive


def _wrap(argv: Sequence[str], timeout: float) -> list[str]:
    """``timeout -k 2 T stdbuf -oL -eL argv...``.

    -k: if the program ignores SIGTERM when the time is up, timeout SIGKILLs it.
    stdbuf (it execs the program: the PID tree stays timeout -> program) makes
    stdio line-buffered, so what a peer printed survives its being killed or
    crashing (gnutls-cli and s_client otherwise lose their whole stdout then).
    """
    return [
        require_binary("timeout"),
        "-k",
        "2",
        f"{timeout:g}",
        require_binary("stdbuf"),
        "-oL",
        "-eL",
        *argv,
    ]


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- servers


class PeerServer:
    """A peer server process: start, wait until ready, capture output, stop by PID.

    Subclasses build the command line and tell readiness. Use as ``with`` or
    ``async with`` (the async form runs start/stop in a worker thread).
    """

    name = "peer"

    def __init__(self, *, port: int | None = None, timeout: float = 60, ready_timeout: float = 5):
        self._auto_port = port is None
        self.port: int = port if port is not None else self._pick_port()
        self.timeout = timeout
        self.ready_timeout = ready_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdin_lock = threading.Lock()
        self._final: tuple[bytes, bytes] = (b"", b"")

    # -- subclass hooks
    def _pick_port(self) -> int:
        return free_udp_port()

    def _argv(self, workdir: Path) -> list[str]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _start_failed_early(self) -> bool:
        """Output says the start failed although the process may still run."""
        return False

    _keep_stdin_open = False

    # -- paths and output
    @property
    def workdir(self) -> Path:
        if self._tmp is None:
            raise PeerError(f"{self.name} is not started")
        return Path(self._tmp.name)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def output_bytes(self) -> bytes:
        """Everything the server wrote on stdout so far."""
        return self._read("stdout")

    def output(self) -> str:
        """stdout so far as text (openssl s_server prints received application data there)."""
        return _text(self.output_bytes())

    def errors(self) -> str:
        """stderr so far as text (gnutls-serv logs there)."""
        return _text(self._read("stderr"))

    def all_output(self) -> str:
        return self.output() + self.errors()

    def _read(self, stream: str) -> bytes:
        if self._tmp is None:  # not started, or stopped: the copy taken at stop
            return self._final[0 if stream == "stdout" else 1]
        try:
            return (Path(self._tmp.name) / f"{stream}.log").read_bytes()
        except FileNotFoundError:
            return b""

    def describe(self) -> str:
        return (
            f"{self.name} on port {self.port} (pid {self.pid}, rc {self.returncode})\n"
            f"--- stdout\n{self.output()}\n--- stderr\n{self.errors()}"
        )

    def wait_for_output(self, substring: str, timeout: float = 5, *, stderr: bool = True) -> str:
        """Block until ``substring`` appears on stdout (or stderr); return all output."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.all_output() if stderr else self.output()
            if substring in text:
                return text
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{substring!r} not seen in {timeout} s: {self.describe()}")
            time.sleep(_POLL)

    async def wait_for_output_async(
        self, substring: str, timeout: float = 5, *, stderr: bool = True
    ) -> str:
        """Like :meth:`wait_for_output`, without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.all_output() if stderr else self.output()
            if substring in text:
                return text
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{substring!r} not seen in {timeout} s: {self.describe()}")
            await asyncio.sleep(_POLL)

    def send(self, data: bytes) -> None:
        """Write to the server's stdin (openssl s_server sends it to the connected client)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise PeerError(f"{self.name} has no stdin to write to")
        with self._stdin_lock:
            proc.stdin.write(data)
            proc.stdin.flush()

    # -- lifecycle
    def start(self) -> Self:
        attempts = 4 if self._auto_port else 1
        for attempt in range(attempts):
            try:
                self._start_once()
                return self
            except PeerStartError:
                self.stop()
                if attempt == attempts - 1:
                    raise
                self.port = self._pick_port()  # maybe lost a port race: retry elsewhere
        raise AssertionError("unreachable")

    def _start_once(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"dtlsfast-{self.name}-")
        workdir = Path(self._tmp.name)
        argv = _wrap(self._argv(workdir), self.timeout)
        with (
            open(workdir / "stdout.log", "wb") as out,
            open(workdir / "stderr.log", "wb") as err,
        ):
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if self._keep_stdin_open else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=workdir,
            )
        _register(self._proc.pid, f"{self.name} port {self.port}: {' '.join(argv)}")
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self._start_failed_early():
                raise PeerStartError(f"{self.name} failed to start: {self.describe()}")
            if self._is_ready():
                return
            if self._proc.poll() is not None:
                raise PeerStartError(f"{self.name} exited before ready: {self.describe()}")
            if time.monotonic() >= deadline:
                raise PeerStartError(
                    f"{self.name} not ready after {self.ready_timeout} s: {self.describe()}"
                )
            time.sleep(_POLL)

    def stop(self, grace: float = 1.0) -> int | None:
        """Stop the server by its own PID: EOF on stdin, SIGTERM, then SIGKILL. Idempotent."""
        proc = self._proc
        rc: int | None = None
        if proc is not None:
            try:
                if proc.stdin is not None:
                    with self._stdin_lock, contextlib.suppress(OSError):
                        proc.stdin.close()  # openssl s_server exits cleanly on EOF
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(grace / 2)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)  # timeout forwards it to the program
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(grace)
            finally:
                if proc.poll() is None:
                    _kill_tree(proc.pid)
                rc = proc.wait()
                _unregister(proc.pid)
        if self._tmp is not None:
            # keep the logs readable after stop: copy them into memory first
            self._final = (self._read("stdout"), self._read("stderr"))
            self._tmp.cleanup()
            self._tmp = None
        return rc

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        try:
            return await asyncio.to_thread(self.start)
        except BaseException:
            self.stop()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


class OpenSslServer(PeerServer):
    """``openssl s_server -dtls1_2`` with the seed PSK, bound to 127.0.0.1.

    Ready when it prints ``ACCEPT``. It prints received application data on
    stdout and never echoes; it serves one connection at a time. Its stdin is a
    pipe held open (EOF makes it exit); :meth:`send` writes to it, which sends
    the bytes to the connected client (lines starting with a command letter
    such as ``Q`` or ``R`` are commands for s_server, not data).
    """

    name = "openssl-s_server"
    _keep_stdin_open = True

    def __init__(
        self,
        cipher: str = "PSK-AES128-CCM8",
        *,
        port: int | None = None,
        psk: bool = True,
        mtu: int | None = None,
        keylog_file: str | Path | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = 60,
        ready_timeout: float = 5,
    ) -> None:
        super().__init__(port=port, timeout=timeout, ready_timeout=ready_timeout)
        self.cipher = openssl_cipher(cipher)
        self.psk = psk
        self.mtu = mtu
        self.keylog_file = keylog_file
        self.extra_args = tuple(extra_args)

    def _argv(self, workdir: Path) -> list[str]:
        argv = [require_binary("openssl"), "s_server", "-dtls1_2"]
        argv += ["-accept", f"{LOCALHOST}:{self.port}", "-cipher", self.cipher]
        if self.psk:
            argv += ["-psk", PSK_KEY_HEX, "-psk_hint", PSK_HINT, "-psk_identity", PSK_IDENTITY]
            if not any(a in self.extra_args for a in ("-cert", "-key")):
                argv.append("-nocert")
        if self.mtu is not None:
            argv += ["-mtu", str(self.mtu)]
        if self.keylog_file is not None:  # NSS key log (for tshark); outlives the server
            argv += ["-keylogfile", str(self.keylog_file)]
        return argv + list(self.extra_args)

    def _is_ready(self) -> bool:
        return b"ACCEPT" in self.output_bytes()

    def negotiated_cipher(self) -> str | None:
        """openssl name of the last negotiated cipher ("CIPHER is X"), if any."""
        found = re.findall(r"^CIPHER is (\S+)", self.output(), re.M)
        return found[-1] if found else None

    def negotiated_suite(self) -> str | None:
        return iana_from_openssl(self.negotiated_cipher())


class GnuTlsServer(PeerServer):
    """``gnutls-serv --udp --echo`` with the seed PSK (psk file in its temp dir).

    gnutls-serv has no bind option: it listens on 0.0.0.0 and ::, so the port is
    picked free on 0.0.0.0; connect through 127.0.0.1 only. Ready when stderr
    says ``UDP Echo Server listening on IPv4 0.0.0.0 port P...done``. It logs
    each received record on stderr as ``*** Processing N bytes command: ...``
    and echoes it (replacing CRLF by LF unless ``--crlf``).
    """

    name = "gnutls-serv"

    def __init__(
        self,
        priority: str = GNUTLS_ALL_PSK_PRIORITY,
        *,
        port: int | None = None,
        psk: bool = True,
        mtu: int | None = None,
        echo: bool = True,
        extra_args: Sequence[str] = (),
        timeout: float = 60,
        ready_timeout: float = 5,
    ) -> None:
        super().__init__(port=port, timeout=timeout, ready_timeout=ready_timeout)
        self.priority = gnutls_priority(priority)
        self.psk = psk
        self.mtu = mtu
        self.echo = echo
        self.extra_args = tuple(extra_args)

    def _pick_port(self) -> int:
        return free_udp_port("0.0.0.0")

    def _argv(self, workdir: Path) -> list[str]:
        argv = [require_binary("gnutls-serv"), "--udp", "-p", str(self.port)]
        argv += ["--priority", self.priority]
        if self.echo:
            argv.append("--echo")
        if self.psk:
            pskfile = workdir / "psk.txt"
            pskfile.write_text(f"{PSK_IDENTITY}:{PSK_KEY_HEX}\n")
            argv += ["--pskpasswd", str(pskfile), "--pskhint", PSK_HINT]
        if self.mtu is not None:
            argv += ["--mtu", str(self.mtu)]
        return argv + list(self.extra_args)

    def _is_ready(self) -> bool:
        return (
            re.search(rf"listening on IPv4 \S+ port {self.port}\.\.\.done", self.errors())
            is not None
        )

    def _start_failed_early(self) -> bool:
        return "bind() failed" in self.errors() or "Address already in use" in self.errors()


#: gnutls priority for ECDHE-ECDSA in DTLS 1.2 with raw public keys (RFC 7250)
#: allowed for both the server's and the client's certificate
GNUTLS_RPK_PRIORITY = (
    "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+ECDHE-ECDSA:+CTYPE-SRV-RAWPK:+CTYPE-CLI-RAWPK"
)


@dataclass(frozen=True)
class RawKeyFiles:
    """A P-256 key pair written the way each peer takes a raw public key."""

    keyfile: Path  #: PKCS#8 PEM: gnutls ``--rawpkkeyfile``, dtlsfast ``keyfile``
    pubfile: Path  #: SPKI PEM: gnutls ``--rawpkfile``, dtlsfast ``trusted_keys_file``
    libcoap: Path  #: SEC1 ``EC PRIVATE KEY`` PEM: libcoap ``-M``
    spki: bytes  #: DER SubjectPublicKeyInfo


def make_raw_key(directory: Path, name: str) -> RawKeyFiles:
    """Generate a key pair in ``directory`` (``name.key``, ``name.pub``, ``name.rpk.pem``)."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    files = RawKeyFiles(
        directory / f"{name}.key",
        directory / f"{name}.pub",
        directory / f"{name}.rpk.pem",
        public.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo),
    )
    plain = ser.NoEncryption()
    files.keyfile.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, plain))
    files.pubfile.write_bytes(
        public.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    )
    files.libcoap.write_bytes(
        key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, plain)
    )
    return files


def coap_ping(port: int, host: str = LOCALHOST, timeout: float = 0.2) -> bool:
    """Send a CoAP ping (empty CON) to plain coap on ``port``; True on a matching RST."""
    mid = int.from_bytes(os.urandom(2), "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(bytes([0x40, 0x00]) + mid.to_bytes(2, "big"), (host, port))
            data = s.recv(2048)
        except OSError:  # timeout, or ICMP port unreachable -> ConnectionRefusedError
            return False
    return len(data) >= 4 and data[0] >> 4 == 0x7 and int.from_bytes(data[2:4], "big") == mid


class CoapServerPeer(PeerServer):
    """libcoap's example server: ``coap-server-<variant> -A 127.0.0.1 -p P -k KEY -h CoAP -d 10``.

    Plain coap on ``port``, coaps on ``coaps_port`` (= port + 1; it also opens
    TCP P and TLS P+1). Resources: ``/``, ``/time`` (observable),
    ``/async``, ``/example_data`` (block-wise), and with ``-d N`` a PUT creates
    a resource (e.g. ``/light``). libcoap prints nothing when it is ready (and
    logs to stdout): readiness is a CoAP ping answered on plain coap, the
    endpoints being all created before its main loop runs.
    """

    name = "coap-server"

    def __init__(
        self,
        variant: str = "openssl",
        *,
        port: int | None = None,
        psk: bool = True,
        dynamic: int | None = 10,
        verbose: int | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = 60,
        ready_timeout: float = 5,
    ) -> None:
        super().__init__(port=port, timeout=timeout, ready_timeout=ready_timeout)
        self.variant = variant
        self.name = f"coap-server-{variant}"
        self.psk = psk
        self.dynamic = dynamic
        self.verbose = verbose
        self.extra_args = tuple(extra_args)

    @property
    def coaps_port(self) -> int:
        return self.port + 1

    def uri(self, path: str = "", *, secure: bool = True) -> str:
        if secure:
            return f"coaps://{LOCALHOST}:{self.coaps_port}/{path.lstrip('/')}"
        return f"coap://{LOCALHOST}:{self.port}/{path.lstrip('/')}"

    def _pick_port(self) -> int:
        return free_udp_port_pair()

    def _argv(self, workdir: Path) -> list[str]:
        argv = [
            require_binary(f"coap-server-{self.variant}"),
            "-A",
            LOCALHOST,
            "-p",
            str(self.port),
        ]
        if self.psk and self.variant != "notls":
            argv += ["-k", PSK_KEY.decode(), "-h", PSK_HINT]
        if self.dynamic is not None:
            argv += ["-d", str(self.dynamic)]
        if self.verbose is not None:
            argv += ["-v", str(self.verbose)]
        return argv + list(self.extra_args)

    def _start_failed_early(self) -> bool:
        # e.g. "CRIT cannot create TCP endpoint" (UDP clashes go unnoticed: SO_REUSEADDR)
        return "cannot create" in self.all_output()

    def _is_ready(self) -> bool:
        return coap_ping(self.port)


# --------------------------------------------------------------------------- clients


@dataclass
class CompletedPeer:
    """What a peer client did: exit status, raw output, and facts parsed from it."""

    argv: list[str]
    returncode: int | None
    stdout: bytes
    stderr: bytes
    duration: float
    timed_out: bool = False  #: killed by us (or by ``timeout``: rc 124/137)
    handshake_ok: bool | None = None  #: DTLS handshake completed (None: not a DTLS client)
    protocol: str | None = None  #: e.g. "DTLSv1.2" (openssl) / "DTLS1.2" (gnutls)
    cipher: str | None = None  #: as the tool prints it
    suite: str | None = None  #: IANA name, when it is one of :data:`SUITES`
    app_data: bytes = b""  #: application data received (best effort, from stdout)
    response_codes: list[str] = field(default_factory=list)  #: CoAP codes, e.g. ["2.05"]
    payload: bytes | None = None  #: CoAP payload(s) received (``-o`` file; concatenated)

    @property
    def out(self) -> str:
        return _text(self.stdout)

    @property
    def err(self) -> str:
        return _text(self.stderr)

    @property
    def crashed(self) -> bool:
        """Died of a signal it did not ask for (``timeout`` reports 128+N)."""
        rc = self.returncode
        return rc is not None and (-64 < rc < 0 or rc in (128 + 4, 128 + 6, 128 + 7, 128 + 11))

    @property
    def response_code(self) -> str | None:
        """The first CoAP response code (the reply to the request), if any."""
        return self.response_codes[0] if self.response_codes else None

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nrc={self.returncode} timed_out={self.timed_out} "
            f"duration={self.duration:.2f}s handshake_ok={self.handshake_ok} "
            f"cipher={self.cipher} suite={self.suite} codes={self.response_codes}\n"
            f"--- stdout\n{self.out}\n--- stderr\n{self.err}"
        )


async def _read_all(stream: asyncio.StreamReader, sink: bytearray, seen: asyncio.Event) -> None:
    while chunk := await stream.read(65536):
        sink += chunk
        seen.set()


async def run_peer(
    argv: Sequence[str],
    *,
    stdin_data: bytes | None = None,
    linger: float = 0.0,
    expect: bytes | None = None,
    timeout: float = 10,
    cwd: str | Path | None = None,
    repeat_every: float | None = None,
) -> tuple[int | None, bytes, bytes, float, bool]:
    """Run ``argv`` under ``timeout``; return (rc, stdout, stderr, duration, timed_out).

    With ``stdin_data`` (even ``b""``), stdin is a pipe: the data is written,
    then stdin stays open until ``expect`` shows up on stdout or ``linger``
    seconds pass, whichever is first, and is closed then (peers exit on EOF).
    With ``repeat_every``, ``stdin_data`` is written again every that many
    seconds while stdin is held open (a datagram peer sends each write as its
    own record: on a lossy link one of them gets through).
    Without it, stdin is /dev/null. The process is killed by PID if it
    outlives ``timeout`` (plus a small margin) or if the caller is cancelled.
    """
    full = _wrap(argv, timeout)
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *full,
        stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )
    _register(proc.pid, " ".join(full))
    out, err = bytearray(), bytearray()
    out_seen, err_seen = asyncio.Event(), asyncio.Event()
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        asyncio.ensure_future(_read_all(proc.stdout, out, out_seen)),
        asyncio.ensure_future(_read_all(proc.stderr, err, err_seen)),
    ]
    timed_out = False
    try:
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(stdin_data or b"")
                await proc.stdin.drain()
                await _hold_stdin(
                    proc, out, out_seen, expect, linger, stdin_data or b"", repeat_every
                )
            proc.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await proc.stdin.wait_closed()
        try:
            await asyncio.wait_for(proc.wait(), timeout=max(0.1, timeout + 3 - _since(start)))
        except TimeoutError:
            timed_out = True
    finally:
        if proc.returncode is None:  # timed out, or we are cancelled / failing
            try:  # SIGTERM first: timeout forwards it and reaps the program
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), timeout=1)
            except (TimeoutError, asyncio.CancelledError):
                pass
            finally:
                if proc.returncode is None:
                    _kill_tree(proc.pid)
                    await proc.wait()
        _unregister(proc.pid)
        # Pipes reach EOF once the program is gone; a stray grandchild holding them
        # was killed with the tree above.
        try:
            await asyncio.wait_for(asyncio.gather(*readers), timeout=2)
        except TimeoutError:
            for r in readers:
                r.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    rc = proc.returncode
    if rc in (124, 137, -9):
        timed_out = True
    return rc, bytes(out), bytes(err), _since(start), timed_out


def _since(start: float) -> float:
    return time.monotonic() - start


async def _hold_stdin(
    proc: asyncio.subprocess.Process,
    out: bytearray,
    out_seen: asyncio.Event,
    expect: bytes | None,
    linger: float,
    data: bytes = b"",
    repeat_every: float | None = None,
) -> None:
    deadline = time.monotonic() + linger
    next_write = None if repeat_every is None else time.monotonic() + repeat_every
    while proc.returncode is None:
        if expect is not None and expect in out:
            return
        now = time.monotonic()
        remaining = deadline - now
        if remaining <= 0:
            return
        if next_write is not None and repeat_every is not None and proc.stdin is not None:
            if now >= next_write:
                proc.stdin.write(data)
                await proc.stdin.drain()
                next_write = now + repeat_every
            remaining = min(remaining, max(0.0, next_write - now))
        out_seen.clear()
        waiter = asyncio.ensure_future(out_seen.wait())
        exited = asyncio.ensure_future(proc.wait())
        await asyncio.wait({waiter, exited}, timeout=remaining, return_when="FIRST_COMPLETED")
        for t in (waiter, exited):
            t.cancel()
        await asyncio.gather(waiter, exited, return_exceptions=True)


def _after(marker: bytes, data: bytes) -> bytes:
    i = data.find(marker)
    return b"" if i < 0 else data[i + len(marker) :]


def _parse_openssl_client(result: CompletedPeer) -> None:
    out = result.out
    m = re.search(r"Cipher is (\S+)", out)
    result.cipher = m.group(1) if m and m.group(1) != "(NONE)" else None
    m = re.search(r"^\s*Protocol\s*:\s*(\S+)", out, re.M)
    result.protocol = m.group(1) if m else None
    result.handshake_ok = result.cipher is not None
    result.suite = iana_from_openssl(result.cipher)
    # After the "SSL-Session:" block comes a line "---", then received data.
    session = result.stdout.find(b"SSL-Session:")
    if session >= 0:
        result.app_data = _after(b"\n---\n", result.stdout[session:])


def _parse_gnutls_client(result: CompletedPeer) -> None:
    m = re.search(r"^- Description: (.*)$", result.out, re.M)
    parts = re.findall(r"\(([^)]*)\)", m.group(1)) if m else []
    # "(DTLS1.2-X.509)-(PSK)-(AES-128-CCM-8)"; non-AEAD suites add "-(SHA256)"
    result.protocol = parts[0].split("-")[0] if parts else None
    kx = parts[1] if len(parts) > 1 else None
    result.cipher = parts[2] if len(parts) > 2 else None
    result.handshake_ok = "- Handshake was completed" in result.out
    result.suite = iana_from_gnutls(kx, result.cipher)
    result.app_data = _after(b"- Simple Client Mode:\n\n", result.stdout)


async def run_openssl_client(
    port: int,
    *,
    cipher: str = "PSK-AES128-CCM8",
    data: bytes = b"",
    mtu: int | None = None,
    psk: bool = True,
    expect: bytes | None = None,
    linger: float = 1.0,
    extra_args: Sequence[str] = (),
    timeout: float = 10,
    host: str = LOCALHOST,
    repeat_every: float | None = None,
) -> CompletedPeer:
    """``openssl s_client -dtls1_2`` with the seed PSK; sends ``data``, then waits.

    ``cipher`` takes an IANA name from :data:`SUITES` or an openssl cipher list.
    stdin stays open until ``expect`` arrives or ``linger`` seconds pass; on
    EOF s_client sends close_notify and exits (about 0.5 s later).
    ``repeat_every``: send ``data`` again every that many seconds meanwhile.
    ``-nocommands`` keeps lines starting with Q/R/k/K from being commands.
    """
    argv = [require_binary("openssl"), "s_client", "-dtls1_2", "-nocommands"]
    argv += ["-connect", f"{host}:{port}", "-cipher", openssl_cipher(cipher)]
    if psk:
        argv += ["-psk", PSK_KEY_HEX, "-psk_identity", PSK_IDENTITY]
    if mtu is not None:
        argv += ["-mtu", str(mtu)]
    argv += list(extra_args)
    rc, out, err, duration, timed_out = await run_peer(
        argv,
        stdin_data=data,
        linger=linger,
        expect=expect,
        timeout=timeout,
        repeat_every=repeat_every,
    )
    result = CompletedPeer(argv, rc, out, err, duration, timed_out)
    _parse_openssl_client(result)
    return result


async def run_gnutls_client(
    port: int,
    *,
    priority: str = "TLS_PSK_WITH_AES_128_CCM_8",
    data: bytes = b"",
    mtu: int | None = None,
    psk: bool = True,
    expect: bytes | None = None,
    linger: float = 1.0,
    extra_args: Sequence[str] = (),
    timeout: float = 10,
    host: str = LOCALHOST,
) -> CompletedPeer:
    """``gnutls-cli --udp`` with the seed PSK; sends ``data``, then waits.

    ``priority`` takes an IANA name from :data:`SUITES` or a priority string.
    Received data is printed after "- Simple Client Mode:" (``app_data``).
    See :data:`GNUTLS_CLI_BROKEN_SUITES`: gnutls-cli crashes as an ECDHE_PSK client.
    """
    argv = [require_binary("gnutls-cli"), "--udp", "-p", str(port), host]
    argv += ["--priority", gnutls_priority(priority)]
    if psk:
        argv += ["--pskusername", PSK_IDENTITY, "--pskkey", PSK_KEY_HEX]
    if mtu is not None:
        argv += ["--mtu", str(mtu)]
    argv += list(extra_args)
    rc, out, err, duration, timed_out = await run_peer(
        argv, stdin_data=data, linger=linger, expect=expect, timeout=timeout
    )
    result = CompletedPeer(argv, rc, out, err, duration, timed_out)
    _parse_gnutls_client(result)
    return result


_COAP_LINE = re.compile(rb"^v:1 t:(CON|NON|ACK|RST) c:(\d\.\d\d) i:", re.M)
_COAP_ERROR_LINE = re.compile(rb"^(\d\.\d\d) ", re.M)


async def run_coap_client(
    uri: str,
    *,
    method: str = "get",
    payload: bytes | str | None = None,
    psk: bool = True,
    observe_seconds: float | None = None,
    variant: str = "openssl",
    bound: float = 5,
    verbose: int | None = 6,
    extra: Sequence[str] = (),
    timeout: float | None = None,
) -> CompletedPeer:
    """``coap-client-<variant> -B bound [-u CoAP -k esp32c3_key] [-m M] [-e/-f] [-s N] uri``.

    The client exits 0 even on 4.04. With ``-v 6`` it logs every message on
    stdout as ``v:1 t:ACK c:2.05 i:... :: 'payload'`` (the parsed
    ``response_codes``, requests excluded); error codes also go to stderr
    ("4.04 Not Found"). The payload goes to a file (``-o``), read back into
    ``payload`` (observe notifications concatenated). A ``str`` payload is
    sent with ``-e``, ``bytes`` with ``-f`` from a file.
    """
    if variant not in ("openssl", "gnutls", "notls"):
        raise ValueError(f"unknown libcoap variant {variant!r}")
    prog = require_binary(f"coap-client-{variant}")
    if timeout is None:
        timeout = bound + (observe_seconds or 0) + 5
    with tempfile.TemporaryDirectory(prefix="dtlsfast-coap-client-") as tmp:
        outfile = Path(tmp) / "payload.bin"
        argv = [prog, "-B", f"{bound:g}"]
        if psk and variant != "notls":
            argv += ["-u", PSK_IDENTITY, "-k", PSK_KEY.decode()]
        if method.lower() != "get":
            argv += ["-m", method.lower()]
        if isinstance(payload, str):
            argv += ["-e", payload]
        elif payload is not None:
            infile = Path(tmp) / "request.bin"
            infile.write_bytes(payload)
            argv += ["-f", str(infile)]
        if observe_seconds is not None:
            argv += ["-s", f"{observe_seconds:g}"]
        if verbose is not None:
            argv += ["-v", str(verbose)]
        argv += ["-o", str(outfile), *extra, uri]
        rc, out, err, duration, timed_out = await run_peer(argv, timeout=timeout, cwd=tmp)
        result = CompletedPeer(argv, rc, out, err, duration, timed_out)
        result.payload = outfile.read_bytes() if outfile.exists() else None
    codes = [m.group(2).decode() for m in _COAP_LINE.finditer(out) if m.group(2) != b"0.00"]
    if not codes:
        codes = [m.group(1).decode() for m in _COAP_ERROR_LINE.finditer(err)]
    result.response_codes = codes
    return result


@contextlib.asynccontextmanager
async def serve_process(
    log_path: Path, coap_port: int, coaps_port: int, *options: str, limit: float = 60
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``dtlsfast serve`` as a user runs it, on 127.0.0.1 (``coap_port`` 0: no
    plain CoAP), its output in ``log_path``; yields the process once it serves
    /light. At the end, if still running, SIGTERM first, then SIGKILL.

    Under ``timeout --foreground``: ``timeout`` forwards SIGTERM to the server,
    so the server cannot be orphaned; without ``--foreground`` it passes the
    signal on twice (to the server and to its process group), and the second
    one sometimes lands after the server's handler is gone (exit -15).
    """
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            "timeout", "--foreground", str(limit), sys.executable, "-m", "dtlsfast.cli", "serve",
            "--bind", LOCALHOST, "--port", str(coap_port), "--coaps-port", str(coaps_port),
            *options,
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while "serving /light" not in log_path.read_text():
            if loop.time() > deadline or process.returncode is not None:
                raise AssertionError(f"dtlsfast serve did not start:\n{log_path.read_text()}")
            await asyncio.sleep(0.05)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
