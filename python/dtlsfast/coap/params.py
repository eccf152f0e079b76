"""Transmission parameters and derived time values (RFC 7252 §4.8, §4.8.2).

The defaults are RFC 7252's: ACK_TIMEOUT 2 s, ACK_RANDOM_FACTOR 1.5,
MAX_RETRANSMIT 4, MAX_LATENCY 100 s, PROCESSING_DELAY = ACK_TIMEOUT, which give
EXCHANGE_LIFETIME 247 s and NON_LIFETIME 145 s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dtlsfast.exceptions import ConfigurationError


@dataclass(frozen=True, slots=True)
class TransmissionParameters:
    """RFC 7252 §4.8 transmission parameters."""

    ack_timeout: float = 2.0
    ack_random_factor: float = 1.5
    max_retransmit: int = 4
    max_latency: float = 100.0
    processing_delay: float | None = None

    def __post_init__(self) -> None:
        if self.ack_timeout <= 0:
            raise ConfigurationError("ack_timeout must be positive")
        if self.ack_random_factor < 1.0:
            raise ConfigurationError("ack_random_factor must be at least 1.0 (RFC 7252 §4.8)")
        if not 0 <= self.max_retransmit <= 20:
            raise ConfigurationError("max_retransmit must be 0..20")
        if self.max_latency < 0:
            raise ConfigurationError("max_latency must not be negative")

    @property
    def max_transmit_span(self) -> float:
        return self.ack_timeout * ((1 << self.max_retransmit) - 1) * self.ack_random_factor

    @property
    def max_transmit_wait(self) -> float:
        return self.ack_timeout * ((1 << (self.max_retransmit + 1)) - 1) * self.ack_random_factor

    @property
    def exchange_lifetime(self) -> float:
        delay = self.ack_timeout if self.processing_delay is None else self.processing_delay
        return self.max_transmit_span + 2 * self.max_latency + delay

    @property
    def non_lifetime(self) -> float:
        return self.max_transmit_span + self.max_latency

    def initial_timeout(self, rng: random.Random) -> float:
        """A random initial retransmission timeout in
        [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR] (§4.2)."""
        return rng.uniform(self.ack_timeout, self.ack_timeout * self.ack_random_factor)


__all__ = ["TransmissionParameters"]
