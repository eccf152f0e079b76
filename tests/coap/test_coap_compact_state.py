"""The compact per-peer CoAP state of a gateway: what sharing and slimming
must not change.

Observations keep their registering request without Message ID and token,
one bytes object for every observer with the same request, and still get
notifications with their own token (RFC 7641 §4.2); the deduplication cache
(RFC 7252 §4.5) keeps a remote's single Message ID without a container and
still answers duplicates, bounds each remote and the total, and forgets a
remote that is gone.
"""

from __future__ import annotations

from collections import Counter

from test_coap_observe import OBSERVE, make, register

from dtlsfast.coap import Code, Message, MessageType
from dtlsfast.coap.observe import Observation
from dtlsfast.coap.reliability import DedupCache


async def test_observers_share_their_request_and_keep_their_token() -> None:
    h, res = make()
    peers = [("192.0.2.1", 5683), ("192.0.2.2", 5683)]
    await register(h, b"one", peers[0])
    await register(h, b"two!", peers[1])
    one, two = sorted(h.server.observers("v"), key=lambda o: o.token)
    assert (one.token, two.token) == (b"one", b"two!")
    assert one.request_data is two.request_data
    assert one.request.token == b"one" and two.request.token == b"two!"
    assert one.request.path == "v" and one.request.get_uint(OBSERVE) == 0
    res.set(b"1")
    await h.settle()
    notes = h.take()
    assert sorted(n.token for n in notes) == [b"one", b"two!"]
    assert all(n.payload == b"1" and n.get_uint(OBSERVE) is not None for n in notes)


def test_an_observation_takes_the_message_id_and_token_out() -> None:
    uri_path = 11  # RFC 7252 §5.10
    request = Message(MessageType.CON, Code.GET, 0x1234, b"tok", [(OBSERVE, b""), (uri_path, b"v")])
    data = request.encode()
    obs = Observation((0, "peer"), b"tok", "v", data, 0.0)
    assert obs.request_data != data and len(obs.request_data) == len(data) - 3
    assert obs.request_shape == data[4 + 3 :]
    again = obs.request
    assert (again.token, again.message_id, again.path) == (b"tok", 0, "v")
    assert again.type is MessageType.CON and again.code == Code.GET
    # Given without them (as exported), the same bytes object.
    assert Observation((0, "other"), b"x", "v", obs.request_data, 0.0).request_data is (
        obs.request_data
    )


def test_dedup_one_and_many_ids_per_remote() -> None:
    counters: Counter[str] = Counter()
    cache = DedupCache(per_remote=3, total=100, counters=counters)
    a, b = ("a", 1), ("b", 1)
    cache.add(a, 7, 0.0, 10.0)
    assert cache.get(a, 7, 1.0) is not None and cache.get(b, 7, 1.0) is None
    for mid in (8, 9):
        cache.add(a, mid, 0.0, 10.0)
    cache.add(b, 7, 0.0, 10.0)
    assert len(cache) == 4
    cache.add(a, 10, 0.0, 10.0)  # a's fourth: its oldest goes
    assert cache.get(a, 7, 1.0) is None and cache.get(a, 10, 1.0) is not None
    assert counters["dedup_evicted"] == 1
    cache.remove_remote(a)
    assert len(cache) == 1 and cache.get(a, 9, 1.0) is None
    cache.remove_remote(b)
    assert len(cache) == 0
    cache.remove_remote(b)  # twice is harmless


def test_dedup_total_bound_and_expiry_across_shapes() -> None:
    counters: Counter[str] = Counter()
    cache = DedupCache(per_remote=10, total=3, counters=counters)
    cache.add("a", 1, 0.0, 5.0)
    cache.add("a", 2, 0.0, 5.0)
    cache.add("b", 1, 0.0, 5.0)
    cache.add("c", 1, 1.0, 5.0)  # the oldest of all (a's 1) goes
    assert cache.get("a", 1, 2.0) is None and cache.get("a", 2, 2.0) is not None
    cache.add("a", 3, 1.0, 5.0)  # then a's 2: a's entries went from two to one to two
    assert cache.get("a", 2, 2.0) is None and cache.get("a", 3, 2.0) is not None
    assert len(cache) == 3
    # Re-adding an ID moves it to the end, and expiry drops what outlived itself.
    cache.add("b", 1, 2.0, 5.0)
    cache.add("d", 1, 5.5, 5.0)
    assert cache.get("c", 1, 5.5) is None and cache.get("b", 1, 5.5) is not None
    cache.remove_remote("a")
    assert len(cache) == 2


async def test_a_duplicate_registration_is_answered_from_the_cache() -> None:
    h, _ = make()
    h.request(Code.GET, "v", token=b"ob", mid=5, options=[(OBSERVE, 0)])
    await h.settle()
    [first] = h.take()
    h.request(Code.GET, "v", token=b"ob", mid=5, options=[(OBSERVE, 0)])
    await h.settle()
    [again] = h.take()
    assert again.encode() == first.encode()
    assert len(h.server.observers("v")) == 1
