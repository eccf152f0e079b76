"""Cookie secrets shared by workers (dtlsfast.handshake.cookies, RFC 6347
§4.2.1): jars holding one seed agree on the secrets of every period whenever
they were created, rotate together, and differ from jars of another seed."""

from __future__ import annotations

import os

import pytest

from dtlsfast.exceptions import ConfigurationError
from dtlsfast.handshake.cookies import CookieJar


def test_jars_with_one_seed_agree_whenever_created() -> None:
    seed = os.urandom(32)
    first = CookieJar(secret_lifetime=10.0, now=1000.0, seed=seed)
    later = CookieJar(secret_lifetime=10.0, now=1007.5, seed=seed)
    assert first.secrets == later.secrets
    current, previous = first.secrets
    assert previous is not None and current != previous
    # The next period: both rotate, and the old current is now previous.
    assert first.refresh(1010.0) and later.refresh(1012.0)
    assert first.secrets == later.secrets
    assert first.secrets[1] == current
    assert not first.refresh(1015.0)


def test_other_seed_other_secrets() -> None:
    a = CookieJar(now=0.0, seed=os.urandom(32))
    b = CookieJar(now=0.0, seed=os.urandom(32))
    assert a.secrets[0] != b.secrets[0]


def test_seeded_jar_refuses_manual_rotation_and_short_seeds() -> None:
    jar = CookieJar(now=0.0, seed=os.urandom(32))
    with pytest.raises(ConfigurationError, match="rotates with the clock"):
        jar.rotate(1.0)
    with pytest.raises(ConfigurationError, match="at least 32"):
        CookieJar(seed=b"short")
