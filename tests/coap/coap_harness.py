"""In-memory driver for the CoAP server core: a ManualClock, a capturing
send callable and helpers to build requests (shared by the test_coap_* files)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Hashable, Iterable

from dtlsfast.coap import CoapServer, CoapServerConfig, ManualClock, Message, MessageType
from dtlsfast.coap.message import OptionNumber, OptionValue

PEER: Hashable = ("192.0.2.1", 5683)


class Harness:
    def __init__(self, config: CoapServerConfig | None = None) -> None:
        self.clock = ManualClock()
        self.server = CoapServer(config, clock=self.clock, rng=random.Random(7))
        self.sent: list[tuple[Message, Hashable]] = []
        self.raw: list[bytes] = []
        self.receive = self.server.attach(self._send)
        self._mid = 0x1000
        self._token = 0

    def _send(self, data: bytes, peer: Hashable) -> None:
        self.raw.append(data)
        self.sent.append((Message.decode(data), peer))

    def next_mid(self) -> int:
        self._mid += 1
        return self._mid

    def next_token(self) -> bytes:
        self._token += 1
        return self._token.to_bytes(2, "big")

    def request(
        self,
        code: int,
        path: str = "",
        *,
        type: MessageType = MessageType.CON,
        mid: int | None = None,
        token: bytes | None = None,
        options: Iterable[tuple[int, OptionValue]] = (),
        payload: bytes = b"",
        peer: Hashable = PEER,
    ) -> Message:
        msg = Message(
            type,
            code,
            self.next_mid() if mid is None else mid,
            self.next_token() if token is None else token,
        )
        for segment in [s for s in path.split("/") if s]:
            msg.add_option(OptionNumber.URI_PATH, segment)
        for number, value in options:
            msg.add_option(number, value)
        msg.payload = payload
        self.receive(msg.encode(), peer)
        return msg

    def take(self) -> list[Message]:
        out = [m for m, _ in self.sent]
        self.sent.clear()
        return out

    async def settle(self) -> None:
        """Let handler tasks run."""
        for _ in range(20):
            await asyncio.sleep(0)

    async def exchange(self, code: int, path: str = "", **kwargs: object) -> Message:
        """Send a request, let it run, return the single reply."""
        self.request(code, path, **kwargs)  # type: ignore[arg-type]
        await self.settle()
        replies = self.take()
        assert len(replies) == 1, replies
        return replies[0]
