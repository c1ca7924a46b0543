"""What can go wrong on a simulated device, and the synthetic numbers it reports. Pure.

Faults are configured per fleet (:class:`FaultSettings`) and drawn per device and per inference
from a seeded ``random.Random``, so a run is reproducible. The "bad model" fault is how tests
inject a release that is signed and installs fine but fails in the field: every device running
a release in ``bad_releases`` reports ``bad_error_rate`` errors and ``bad_latency_factor``
slower inferences (and lower shadow agreement), which is what the rollout gates must catch.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from edge_agent.errors import ConfigError


@dataclass(frozen=True)
class FaultSettings:
    """Fault rates of a simulated fleet (fractions in [0, 1], factors >= 1)."""

    error_rate: float = 0.0
    """Chance that any inference fails, on any release."""
    latency_factor: float = 1.0
    """Multiplies every latency (a slow fleet)."""
    slow_fraction: float = 0.0
    """Fraction of devices whose latency is multiplied by ``slow_factor`` (stragglers)."""
    slow_factor: float = 4.0
    install_failure_rate: float = 0.0
    """Chance that installing a release fails on a device (it reports ``failed``)."""
    bad_releases: frozenset[int] = field(default_factory=frozenset)
    """Releases that are "bad models": they install, then misbehave in the field."""
    bad_error_rate: float = 0.5
    bad_latency_factor: float = 1.0
    bad_agreement: float = 0.4
    """Shadow agreement a device reports for a bad release (good ones: ~0.99)."""

    def __post_init__(self) -> None:
        fractions = {
            "error_rate": self.error_rate,
            "slow_fraction": self.slow_fraction,
            "install_failure_rate": self.install_failure_rate,
            "bad_error_rate": self.bad_error_rate,
            "bad_agreement": self.bad_agreement,
        }
        bad = [k for k, v in fractions.items() if not 0.0 <= v <= 1.0]
        bad += [
            k
            for k, v in {
                "latency_factor": self.latency_factor,
                "slow_factor": self.slow_factor,
                "bad_latency_factor": self.bad_latency_factor,
            }.items()
            if not v > 0
        ]
        if bad:
            raise ConfigError(f"simulator fault settings out of range: {', '.join(bad)}")


@dataclass(frozen=True)
class Inference:
    """One synthetic inference."""

    ok: bool
    latency_s: float


BASE_LATENCY_MS = 8.0
LATENCY_SIGMA = 0.25


def device_is_slow(rng: random.Random, faults: FaultSettings) -> bool:
    """Drawn once per device."""
    return rng.random() < faults.slow_fraction


def synthetic_inference(
    rng: random.Random, faults: FaultSettings, release: int, slow: bool
) -> Inference:
    """One inference on ``release``: lognormal latency around 8 ms, errors by fault rate."""
    bad = release in faults.bad_releases
    error_rate = max(faults.error_rate, faults.bad_error_rate if bad else 0.0)
    factor = faults.latency_factor * (faults.slow_factor if slow else 1.0)
    if bad:
        factor *= faults.bad_latency_factor
    latency_ms = BASE_LATENCY_MS * factor * math.exp(rng.gauss(0.0, LATENCY_SIGMA))
    return Inference(rng.random() >= error_rate, latency_ms / 1000.0)


def shadow_evidence(
    rng: random.Random, faults: FaultSettings, release: int, compared: int = 32
) -> dict[str, float | int]:
    """The swap evidence a device reports when it activates ``release``."""
    agreement = faults.bad_agreement if release in faults.bad_releases else 0.99
    agreed = sum(1 for _ in range(compared) if rng.random() < agreement)
    return {"compared": compared, "agreement": round(agreed / compared, 4), "error_rate": 0.0}


def install_fails(rng: random.Random, faults: FaultSettings) -> bool:
    """Whether this install attempt fails."""
    return rng.random() < faults.install_failure_rate
