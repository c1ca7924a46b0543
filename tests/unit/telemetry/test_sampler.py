from __future__ import annotations

import pytest

from edge_agent.telemetry.sampler import Sampler


@pytest.mark.parametrize("rate", [0.01, 0.2, 0.7])
def test_sampled_share_matches_rate(rate: float) -> None:
    sampler = Sampler(rate, seed=42)
    n = 50_000
    hits = sum(sampler.should_sample() for _ in range(n))
    assert hits == pytest.approx(n * rate, rel=0.1)
    assert sampler.seen == n and sampler.sampled == hits


def test_rate_one_samples_everything() -> None:
    sampler = Sampler(1.0)
    assert all(sampler.should_sample() for _ in range(100))


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5])
def test_invalid_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="sampling rate"):
        Sampler(rate)
