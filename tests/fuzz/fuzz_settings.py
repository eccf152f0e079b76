"""The hypothesis settings of the fuzz tests: ``DTLSFAST_FUZZ_EXAMPLES`` sets
how many examples each runs (300 by default; 20,000 digs deeper)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("DTLSFAST_FUZZ_EXAMPLES", "300"))

SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
