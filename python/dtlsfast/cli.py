"""The ``dtlsfast`` command: a CoAP/CoAPS server and client.

``dtlsfast serve`` with no arguments reproduces the ESP-IDF CoAP+DTLS example
(RFC 7252 with the DTLS profile of §9.1): plain CoAP on UDP 5683, CoAPS on 5684
with PSK identity ``CoAP`` and key ``esp32c3_key``, and one observable
resource, ``light``. ``dtlsfast get|put|post|delete|observe URI`` is a client
in the spirit of libcoap's ``coap-client``. ``dtlsfast bench URI`` is a load
generator for any CoAP or CoAPS server (:mod:`dtlsfast.coap.loadgen`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dtlsfast.exceptions import ConfigurationError, DtlsError
from dtlsfast.server import ServerLimits
from dtlsfast.store.saver import DEFAULT_INTERVAL
from dtlsfast.workers.context import worker_context

log = logging.getLogger("dtlsfast.cli")

DEFAULT_IDENTITY = "CoAP"
DEFAULT_KEY = "esp32c3_key"
CONTENT_FORMATS = {"text": 0, "text/plain": 0, "link": 40, "json": 50, "cbor": 60, "octet": 42}


def _content_format(value: str) -> int:
    if value in CONTENT_FORMATS:
        return CONTENT_FORMATS[value]
    try:
        number = int(value, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown content format {value!r}: give a number or one of "
            + ", ".join(sorted(CONTENT_FORMATS))
        ) from None
    if not 0 <= number <= 0xFFFF:
        raise argparse.ArgumentTypeError("a content format is a number from 0 to 65535")
    return number


def read_psk_file(path: Path) -> dict[bytes, bytes]:
    """Read ``identity:key`` lines; a key starting with ``0x`` is hex.

    Blank lines and lines starting with ``#`` are ignored.
    """
    store: dict[bytes, bytes] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the PSK file {path}: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        identity, sep, key = line.partition(":")
        if not sep or not identity or not key:
            raise ConfigurationError(
                f"{path}:{number}: expected 'identity:key' (key in ASCII, or 0x followed by hex)"
            )
        if key.startswith("0x"):
            try:
                store[identity.encode()] = bytes.fromhex(key[2:])
            except ValueError:
                raise ConfigurationError(f"{path}:{number}: the key is not valid hex") from None
        else:
            store[identity.encode()] = key.encode()
    if not store:
        raise ConfigurationError(f"{path} holds no 'identity:key' line")
    return store


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtlsfast", description="CoAP and CoAP over DTLS 1.2: server and client."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the light server of the ESP-IDF example (coap 5683, coaps 5684)",
        description="Serve CoAP on UDP and CoAPS (DTLS 1.2 with a pre-shared key). "
        "The defaults reproduce the ESP-IDF CoAP+DTLS example.",
    )
    serve.add_argument("--bind", default="::", help="address to listen on (default: all)")
    serve.add_argument("--port", type=int, default=5683, help="plain CoAP port; 0 disables")
    serve.add_argument("--coaps-port", type=int, default=5684, help="CoAPS port; 0 disables")
    serve.add_argument("--psk-identity", default=DEFAULT_IDENTITY, help="PSK identity (hint)")
    serve.add_argument("--psk-key", default=DEFAULT_KEY, help="PSK key, ASCII")
    serve.add_argument(
        "--psk-file", type=Path, help="file of 'identity:key' lines (replaces --psk-key)"
    )
    serve.add_argument("--cert", type=Path, help="certificate chain (PEM, leaf first)")
    serve.add_argument("--key", type=Path, help="private key of --cert (PEM, P-256 or P-384)")
    serve.add_argument(
        "--ca", type=Path, help="CA certificates (PEM): require client certificates from them"
    )
    serve.add_argument(
        "--rpk",
        type=Path,
        help="raw public key (RFC 7250): PEM private key (libcoap's -M file works) "
        "presented without a certificate",
    )
    serve.add_argument(
        "--rpk-trust",
        type=Path,
        help="PEM public keys of clients to accept (RFC 7250): require client raw public keys",
    )
    serve.add_argument("--ciphers", help="IANA suite names, comma separated, in preference order")
    serve.add_argument(
        "--log-level",
        default="info",
        help="debug (a line per DTLS session), info (a summary of the handshakes every "
        "10 s), warning or error",
    )
    serve.add_argument("--keylog", type=Path, help="write an NSS key log (for Wireshark) here")
    serve.add_argument(
        "--backend",
        choices=("rust", "pure"),
        default="rust",
        help="record core: the Rust fast path (default) or pure Python (for comparison)",
    )
    serve.add_argument(
        "--connection-id",
        action="store_true",
        help="agree to connection IDs (RFC 9146): sessions survive client address changes",
    )
    serve.add_argument(
        "--require-ems",
        action="store_true",
        help="refuse DTLS clients without the extended master secret (RFC 7627)",
    )
    serve.add_argument(
        "--ticket-key-file",
        type=Path,
        help="session ticket keys (RFC 5077) derived from this file's secret (at least 32 random "
        "bytes, e.g. head -c 64 /dev/urandom), created with a fresh one, mode 0600, if missing; "
        "servers sharing it resume each other's sessions (default: a random in-memory key)",
    )
    serve.add_argument(
        "--no-resumption",
        action="store_true",
        help="full DTLS handshakes only: no session IDs, no session tickets",
    )
    serve.add_argument(
        "--max-sessions",
        type=_positive_int,
        default=ServerLimits.max_sessions,
        help="established DTLS sessions held at once; past it the least recently active are "
        f"evicted (default {ServerLimits.max_sessions:,})",
    )
    serve.add_argument(
        "--hello-rate",
        type=_positive_float,
        default=ServerLimits.hello_rate_per_address,
        help="new DTLS handshakes per second one source address may start, in bursts of twice "
        "as many; its /24 (IPv6 /56) gets four times that (default "
        f"{ServerLimits.hello_rate_per_address:g}; raise it for load tests from one address)",
    )
    serve.add_argument(
        "--crypto-rate",
        type=_positive_float,
        default=ServerLimits.crypto_rate,
        help="expensive key operations (ECDHE, ECDSA) per second for the whole server, in "
        "bursts of twice as many; one /24 (IPv6 /56) may use a quarter (default "
        f"{ServerLimits.crypto_rate:g}; raise it for ECDHE load tests from one address)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=ServerLimits.idle_timeout,
        help="seconds without a record before a DTLS session is closed "
        f"(default {ServerLimits.idle_timeout:g})",
    )
    serve.add_argument(
        "--max-observers",
        type=_positive_int,
        default=None,
        help="observers held at once, of /light and in all; past it a GET with Observe is "
        "answered without registering (default 256 of a resource, 8,192 in all)",
    )
    _add_worker_options(serve)

    _add_state_options(serve)

    for method in ("get", "put", "post", "delete", "observe"):
        cmd = sub.add_parser(method, help=f"send a {method.upper()} request")
        cmd.add_argument("uri", help="coap:// or coaps:// URI")
        cmd.add_argument(
            "-u",
            dest="identity",
            help=f"PSK identity (default {DEFAULT_IDENTITY}; with -M/--rpk-trust, no PSK "
            "unless -u or -k is given)",
        )
        cmd.add_argument("-k", dest="key", help=f"PSK key, ASCII (default {DEFAULT_KEY})")
        cmd.add_argument("-e", dest="payload", default=None, help="payload text")
        cmd.add_argument("-f", dest="payload_file", type=Path, help="payload from a file")
        cmd.add_argument("-t", dest="content_format", type=_content_format, help="content format")
        cmd.add_argument("-A", dest="accept", type=_content_format, help="Accept option")
        cmd.add_argument("-B", dest="timeout", type=float, default=30.0, help="give up after N s")
        cmd.add_argument(
            "-s", dest="duration", type=float, default=None, help="observe for N seconds"
        )
        cmd.add_argument("--ciphers", help="IANA suite names to offer, comma separated")
        cmd.add_argument("-R", dest="ca", type=Path, help="CA certificates (PEM) to trust")
        cmd.add_argument("-c", dest="cert", type=Path, help="client certificate (PEM)")
        cmd.add_argument("-j", dest="keyfile", type=Path, help="client private key (PEM)")
        cmd.add_argument(
            "-M", dest="rpk", type=Path, help="client raw public key: PEM private key (RFC 7250)"
        )
        cmd.add_argument(
            "--rpk-trust", type=Path, help="PEM public keys of servers to accept (RFC 7250)"
        )
        cmd.add_argument("-v", dest="verbose", action="store_true", help="print the response code")
        cmd.add_argument(
            "--connection-id",
            action="store_true",
            help="offer a connection ID (RFC 9146) so a NAT rebinding keeps the session",
        )
        cmd.add_argument(
            "--require-ems",
            action="store_true",
            help="refuse a DTLS server without the extended master secret (RFC 7627)",
        )

    bench = sub.add_parser(
        "bench",
        help="load a CoAP/CoAPS server: requests per second, latency percentiles",
        description="Open --sessions sessions (DTLS with a PSK for coaps://, plain UDP for "
        "coap://), each from its own UDP port, keep --window confirmable requests in flight on "
        "each for --duration seconds, and report requests per second, latency percentiles, "
        "errors and retransmissions. A progress line goes to stderr about once a second when "
        "stderr is a terminal (not with --json or --no-progress).",
    )
    bench.add_argument("uri", help="coap:// or coaps:// URI")
    bench.add_argument(
        "--mode",
        choices=("requests", "handshakes"),
        default="requests",
        help="requests: --sessions sessions, then requests on them (the default); "
        "handshakes: a handshake storm, --handshake-concurrency full handshakes in flight for "
        "--duration seconds, each closed with close_notify (a slot's next one reuses its port), "
        "reporting "
        "handshakes per second, failures by reason and handshake latency",
    )
    bench.add_argument(
        "--resume",
        action="store_true",
        help="with --mode handshakes: each handshake resumes the previous session of its slot "
        "(abbreviated handshakes by session ticket or ID; a full one first)",
    )
    bench.add_argument(
        "--sessions", metavar="N", type=_positive_int, default=1, help="sessions (default 1)"
    )
    bench.add_argument(
        "--window",
        metavar="N",
        type=_positive_int,
        default=1,
        help="requests in flight per session (default 1)",
    )
    bench.add_argument(
        "--duration",
        metavar="SECONDS",
        type=_positive_float,
        default=10.0,
        help="seconds of load (default 10)",
    )
    bench.add_argument("-m", dest="method", default="get", help="get, put, post or delete")
    bench.add_argument("-e", dest="payload", default=None, help="payload text")
    bench.add_argument("-t", dest="content_format", type=_content_format, help="content format")
    bench.add_argument("-u", dest="identity", default=DEFAULT_IDENTITY, help="PSK identity")
    bench.add_argument("-k", dest="key", default=DEFAULT_KEY, help="PSK key, ASCII")
    bench.add_argument(
        "--ciphers", metavar="NAMES", help="IANA suite names to offer, comma separated"
    )
    bench.add_argument(
        "--handshake-concurrency",
        metavar="N",
        type=_positive_int,
        default=32,
        help="handshakes in progress at once (default 32)",
    )
    bench.add_argument(
        "--handshake-timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=10.0,
        help="give a handshake up after N s (default 10)",
    )
    bench.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=10.0,
        help="give a request up after N s, retransmissions included (default 10)",
    )
    bench.add_argument(
        "--processes",
        metavar="N",
        type=_positive_int,
        default=1,
        help="generator processes: split the sessions over N processes, so that the "
        "generator does not set the pace (default 1; at most --sessions)",
    )
    bench.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout, nothing else"
    )
    bench.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return parser


def _add_worker_options(serve: argparse.ArgumentParser) -> None:
    from dtlsfast.workers.serve import metrics_address, worker_count

    serve.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        metavar="N",
        help="worker processes sharing the ports (SO_REUSEPORT), or auto: one per CPU this "
        "process may use (default 1: no supervisor)",
    )
    serve.add_argument(
        "--steering",
        choices=("auto", "bpf", "handover"),
        default="auto",
        help="with --workers: how connection ID records reach their worker: a BPF program "
        "in the kernel (bpf), workers passing them on (handover), or bpf where it attaches "
        "(auto, the default)",
    )
    serve.add_argument(
        "--metrics",
        type=metrics_address,
        metavar="ADDR:PORT",
        help="serve the counters in the Prometheus text format on http://ADDR:PORT/metrics",
    )


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


async def run_server(args: argparse.Namespace) -> int:
    from dtlsfast.coap import CoapServer, LightResource
    from dtlsfast.coap.dtls import listen_dtls
    from dtlsfast.coap.server import CoapServerConfig
    from dtlsfast.workers import serve as workers

    worker = worker_context()
    if worker is None and args.workers > 1:
        return await workers.run_supervised(args)
    # A worker takes its sockets and shared secrets from its supervisor,
    # which logs where it listens.
    extra = {} if worker is None else worker.dtls_options(args.connection_id)
    resumption: Any = not args.no_resumption
    if worker is not None and resumption and args.ticket_key_file is None:
        resumption = worker.shared_resumption()  # one ticket secret for all workers
    if worker is not None and getattr(args, "state_file", None):
        # Each worker holds its own sessions: its own state file, restored
        # when the supervisor restarts it.
        args.state_file = worker.own_path(args.state_file)
    quiet = logging.DEBUG if worker is not None else logging.INFO
    config = CoapServerConfig()
    if args.max_observers is not None:
        n = args.max_observers
        config = CoapServerConfig(observers_per_resource=n, observers_total=n)
    coap = CoapServer(config)
    coap.add_resource("light", LightResource())
    # A worker serves the light every worker serves: its current state first.
    replica = None if worker is None else workers.shared_replica(worker, coap)
    closers: list[Any] = []
    ciphers = args.ciphers.split(",") if args.ciphers else None
    if args.rpk and (args.cert or args.key):
        raise ConfigurationError("give --cert/--key (X.509) or --rpk (raw public key), not both")
    keylog = open(args.keylog, "a", encoding="ascii") if args.keylog else None  # noqa: SIM115
    try:
        if args.port:
            if worker is not None:
                udp = await coap.listen_udp(sock=worker.coap_socket())
            else:
                udp = await _bind(coap.listen_udp, args.bind, args.port)
            closers.append(udp)
            log.log(quiet, "listening on coap://%s/ (plain CoAP)", _fmt(udp.address))
        if args.coaps_port:
            if args.psk_file:
                store: dict[bytes, bytes] = read_psk_file(args.psk_file)
            else:
                store = {args.psk_identity.encode(): args.psk_key.encode()}
            dtls = await _bind(
                lambda host, port: listen_dtls(
                    coap,
                    host,
                    port,
                    psk_store=store,
                    identity_hint=args.psk_identity,
                    ciphers=ciphers,
                    keylog=keylog,
                    certfile=args.cert,
                    keyfile=args.rpk or args.key,
                    raw_public_key=args.rpk is not None,
                    cafile=args.ca,
                    trusted_keys_file=args.rpk_trust,
                    client_auth="required" if args.ca or args.rpk_trust else "none",
                    connection_id=args.connection_id,
                    require_extended_master_secret=args.require_ems,
                    resumption=resumption,
                    ticket_key_file=args.ticket_key_file,
                    backend=args.backend,
                    limits=_limits(args),
                    **_state_options(args),
                    **extra,
                ),
                args.bind,
                args.coaps_port,
            )
            closers.append(dtls)
            log.log(
                quiet,
                "listening on coaps://%s/ (DTLS 1.2, PSK identity hint %r, %d identities%s)",
                _fmt(dtls.address),
                args.psk_identity,
                len(store),
                (f", certificate {args.cert}" if args.cert else "")
                + (f", raw public key {args.rpk}" if args.rpk else "")
                + (", client certificates required" * bool(args.ca))
                + (", client raw public keys required" * bool(args.rpk_trust)),
            )
            _warn_if_example_key(dtls.address, store)
        # What is loaded now (modules, configuration, certificates) lives as
        # long as the process: out of the cycle collector's sight, its full
        # collections no longer walk it again and again under a handshake storm.
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        dtls_server = closers[-1] if args.coaps_port else None
        if worker is not None:
            closers.append(
                await workers.start_worker(worker, coap, closers[:], dtls_server, stop, replica)
            )
        elif args.metrics is not None:
            closers.append(
                await workers.serve_single_metrics(args.metrics, closers[:], coap, dtls_server)
            )
        log.log(quiet, "serving /light (GET, PUT, observable); Ctrl-C to stop")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, _log_counters, closers, coap)
        await stop.wait()
        if args.state_file is not None:
            log.info("stopping: saving the DTLS sessions to %s (no close_notify)", args.state_file)
        else:
            log.info("stopping: close_notify to every DTLS peer")
        for sig in (signal.SIGINT, signal.SIGTERM):
            # A second signal while stopping (``timeout`` sends one to the
            # process group too) must not cut the clean shutdown short.
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
    finally:
        for closer in closers:
            closer.close()
        coap.close()
        if keylog is not None:
            keylog.close()
    return 0


def _warn_if_example_key(address: tuple[str, int], store: dict[bytes, bytes]) -> None:
    """The ESP-IDF example's key is public: on an address other hosts can reach,
    anyone can open a CoAPS session with it. Say so, and how to give a key."""
    if DEFAULT_KEY.encode() not in store.values():
        return
    host = address[0].partition("%")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip is not None and ip.is_loopback:
        return
    where = "every address" if host in ("::", "0.0.0.0") else host
    log.warning(
        "CoAPS on %s (%s) accepts the ESP-IDF example's public PSK key %r: anyone who "
        "can reach it can open a session. Give your own key with --psk-key KEY (and "
        "--psk-identity NAME) or a file of 'identity:key' lines with --psk-file FILE, "
        "or listen on loopback only (--bind 127.0.0.1)",
        _fmt(address),
        where,
        DEFAULT_KEY,
    )


def _add_state_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--state-file",
        type=Path,
        help="keep established DTLS sessions and observations in this file (SQLite, mode "
        "0600, encrypted) and restore them at start: devices carry on with no handshake; "
        "SIGTERM then saves and exits without close_notify",
    )
    serve.add_argument(
        "--state-key-file",
        type=Path,
        help="key file (at least 32 random bytes, mode 0600; created when missing) that "
        "encrypts --state-file (default: --ticket-key-file if given, else STATE_FILE.key)",
    )
    serve.add_argument(
        "--state-save-interval",
        type=_positive_float,
        default=DEFAULT_INTERVAL,
        help="seconds between saves of --state-file: a crash loses the sessions established "
        f"since the last one (default {DEFAULT_INTERVAL:g}, at most 60)",
    )
    serve.add_argument(
        "--state-reset",
        action="store_true",
        help="if --state-file cannot be read (corrupt, other version, other key), move it "
        "aside (STATE_FILE.unusable-TIMESTAMP) and start with no saved sessions",
    )


def _state_options(args: argparse.Namespace) -> dict[str, Any]:
    """serve()'s state file options."""
    if args.state_file is None:
        if args.state_key_file is not None or args.state_reset:
            raise ConfigurationError("--state-key-file and --state-reset need --state-file PATH")
        return {}
    return {
        "state_file": args.state_file,
        "state_key_file": args.state_key_file,  # serve() falls back to the ticket key file
        "state_reset": args.state_reset,
        "state_save_interval": args.state_save_interval,
    }


def _limits(args: argparse.Namespace) -> ServerLimits:
    rate = args.hello_rate
    burst = max(1, round(2 * rate))
    return ServerLimits(
        max_sessions=args.max_sessions,
        idle_timeout=args.idle_timeout,
        hello_rate_per_address=rate,
        hello_burst_per_address=burst,
        hello_rate_per_prefix=max(ServerLimits.hello_rate_per_prefix, 4 * rate),
        hello_burst_per_prefix=max(ServerLimits.hello_burst_per_prefix, 4 * burst),
        crypto_rate=args.crypto_rate,
        crypto_burst=max(ServerLimits.crypto_burst, round(2 * args.crypto_rate)),
    )


def _log_counters(endpoints: list[Any], coap: Any) -> None:
    """SIGUSR1: one log line of JSON with the DTLS and CoAP counters."""
    from dtlsfast.workers.worker import counter_snapshot

    counters = counter_snapshot(endpoints, coap)
    log.warning("counters %s", json.dumps(counters, sort_keys=True))


async def _bind(listen: Any, host: str, port: int) -> Any:
    """Listen on ``host``; for the default ``::`` fall back to IPv4 when the
    machine has no IPv6."""
    try:
        return await listen(host, port)
    except OSError:
        if host != "::":
            raise
        return await listen("0.0.0.0", port)


def _fmt(address: tuple[str, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def run_client(args: argparse.Namespace) -> int:
    from dtlsfast.coap import CoapClient
    from dtlsfast.coap.dtls import coaps_transport_factory

    ciphers = args.ciphers.split(",") if args.ciphers else None
    if args.rpk and (args.cert or args.keyfile):
        raise ConfigurationError("give -c/-j (X.509) or -M (raw public key), not both")
    # Like libcoap's coap-client: raw public keys replace the default PSK (a
    # server without PSK credentials may still pick an offered PSK suite).
    psk = None
    if args.identity is not None or args.key is not None or not (args.rpk or args.rpk_trust):
        psk = (args.identity or DEFAULT_IDENTITY, args.key or DEFAULT_KEY)
    factory = coaps_transport_factory(
        psk,
        ciphers=ciphers,
        cafile=args.ca,
        certfile=args.cert,
        keyfile=args.rpk or args.keyfile,
        raw_public_key=args.rpk is not None,
        trusted_keys_file=args.rpk_trust,
        connection_id=args.connection_id,
        require_extended_master_secret=args.require_ems,
    )
    payload = b""
    if args.payload_file is not None:
        payload = args.payload_file.read_bytes()
    elif args.payload is not None:
        payload = args.payload.encode()
    options: dict[str, Any] = {}
    if args.content_format is not None:
        options["content_format"] = args.content_format
    if args.accept is not None:
        options["accept"] = args.accept
    async with CoapClient(transport_factories={"coaps": factory}) as client:
        if args.command == "observe":
            return await _observe(client, args, options)
        method = getattr(client, args.command)
        call = (
            method(args.uri, payload, **options)
            if args.command in ("put", "post")
            else (method(args.uri, **options))
        )
        async with asyncio.timeout(args.timeout):
            response = await call
        _print_response(response, args.verbose)
        return 0 if 2 <= response.code >> 5 <= 3 else 1


async def _observe(client: Any, args: argparse.Namespace, options: dict[str, Any]) -> int:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.duration):
            async with client.observe(args.uri, **options) as observation:
                async for notification in observation:
                    _print_response(notification, args.verbose)
    return 0


def _print_response(response: Any, verbose: bool) -> None:
    code = response.code
    if verbose or not 2 <= code >> 5 <= 3:
        print(f"{code >> 5}.{code & 0x1F:02d}", file=sys.stderr)
    sys.stdout.write(response.payload.decode("utf-8", "replace"))
    sys.stdout.write("\n")
    sys.stdout.flush()


async def run_bench(args: argparse.Namespace) -> int:
    from dtlsfast.loadgen import Progress, run_load

    def show(p: Progress) -> None:
        print(
            f"{p.elapsed:6.1f} s  {p.requests:>10,} requests  {p.requests_per_second:>9,.0f}/s  "
            f"errors {p.errors:,}  retransmissions {p.retransmissions:,}  "
            f"in flight {p.in_flight:,}",
            file=sys.stderr,
            flush=True,
        )

    interactive = sys.stderr.isatty() and not args.json and not args.no_progress
    # Ctrl-C (or SIGTERM) ends the run early and still reports it.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.mode == "handshakes":
        return await _bench_handshakes(args, show if interactive else None, stop)
    if args.resume:
        raise ConfigurationError("--resume is for --mode handshakes")
    result = await run_load(
        args.uri,
        sessions=args.sessions,
        window=args.window,
        duration=args.duration,
        method=args.method,
        payload=args.payload.encode() if args.payload is not None else b"",
        content_format=args.content_format,
        identity=args.identity,
        key=args.key,
        ciphers=args.ciphers.split(",") if args.ciphers else None,
        handshake_concurrency=args.handshake_concurrency,
        handshake_timeout=args.handshake_timeout,
        request_timeout=args.timeout,
        progress=show if interactive else None,
        stop=stop,
        processes=args.processes,
    )
    if args.json:
        print(result.to_json(), flush=True)
    else:
        print(result.summary(), flush=True)
    if not result.sessions_established:
        if not args.json:
            print("dtlsfast: no session could be established", file=sys.stderr)
        return 1
    return 0


async def _bench_handshakes(args: argparse.Namespace, progress: Any, stop: asyncio.Event) -> int:
    from dtlsfast.loadgen import run_handshakes

    result = await run_handshakes(
        args.uri,
        concurrency=args.handshake_concurrency,
        duration=args.duration,
        identity=args.identity,
        key=args.key,
        ciphers=args.ciphers.split(",") if args.ciphers else None,
        handshake_timeout=args.handshake_timeout,
        progress=progress,
        stop=stop,
        processes=args.processes,
        resume=args.resume,
    )
    print(result.to_json() if args.json else result.summary(), flush=True)
    if not result.handshakes:
        if not args.json:
            print("dtlsfast: no handshake completed", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # what a supervisor starts its workers with
    level = getattr(args, "log_level", "warning")
    worker = worker_context() if args.command == "serve" else None
    where = "" if worker is None else f"[worker {worker.index}]"
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s %(name)s{where}: %(message)s",
    )
    runner = {"serve": run_server, "bench": run_bench}.get(args.command, run_client)
    try:
        return asyncio.run(runner(args))
    except KeyboardInterrupt:
        return 130
    except TimeoutError:  # before OSError, its base class
        print(f"dtlsfast: no answer within {getattr(args, 'timeout', '?')} s", file=sys.stderr)
        return 2
    except (DtlsError, OSError) as exc:
        print(f"dtlsfast: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
