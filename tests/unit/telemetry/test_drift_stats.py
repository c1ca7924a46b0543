from __future__ import annotations

import numpy as np
import pytest

from edge_agent.telemetry import drift_stats
from edge_agent.telemetry.histogram import Histogram, reference_edges

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_raw_statistics_match_scipy(shift: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    a = RNG.normal(size=500)
    b = RNG.normal(loc=shift, scale=1.2, size=300)
    assert drift_stats.ks_from_samples(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)
    assert drift_stats.wasserstein_weighted(a, b) == pytest.approx(stats.wasserstein_distance(a, b))
    w = RNG.uniform(0.1, 2, size=300)
    assert drift_stats.wasserstein_weighted(a, b, None, w) == pytest.approx(
        stats.wasserstein_distance(a, b, None, w)
    )


def test_ks_on_ties_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    a = RNG.integers(0, 5, 200).astype(float)
    b = RNG.integers(1, 6, 150).astype(float)
    assert drift_stats.ks_from_samples(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)


@pytest.mark.parametrize("shift", [0.0, 0.2, 0.8])
def test_histogram_forms_approximate_the_raw_statistics(shift: float) -> None:
    ref_values = RNG.normal(size=5000)
    win_values = RNG.normal(loc=shift, size=400)
    edges = reference_edges(ref_values, 20)
    ref, win = Histogram.from_values(ref_values, edges), Histogram.from_values(win_values, edges)
    raw_ks = drift_stats.ks_from_samples(ref_values, win_values)
    assert raw_ks - 0.06 <= drift_stats.ks(ref, win) <= raw_ks + 1e-12  # lower bound, 1 bin
    raw_w = drift_stats.wasserstein_weighted(ref_values, win_values)
    assert drift_stats.wasserstein(ref, win) == pytest.approx(raw_w, abs=0.06)


def test_psi_is_zero_for_identical_and_grows_with_shift() -> None:
    ref = np.array([100, 100, 100, 100])
    assert drift_stats.psi_from_counts(ref, ref) == pytest.approx(0.0)
    small = drift_stats.psi_from_counts(ref, np.array([90, 100, 100, 110]))
    large = drift_stats.psi_from_counts(ref, np.array([10, 50, 100, 240]))
    assert 0 < small < 0.01 < 0.25 < large


def test_psi_of_an_empty_window_bin_stays_moderate() -> None:
    """Regression: a 1e-4 floor made one bin left empty by chance read as PSI 0.7."""
    ref = np.full(10, 100)
    window = np.array([0, 6, 5, 5, 6, 4, 6, 5, 7, 6])
    assert drift_stats.psi_from_counts(ref, window) < 0.3


def test_normalized_wasserstein_is_finite_for_constant_reference() -> None:
    edges = reference_edges(np.zeros(10), 10)
    ref = Histogram.from_values(np.zeros(10), edges)
    moved = Histogram.from_values(np.ones(10), edges)
    assert drift_stats.normalized_wasserstein(ref, moved) == drift_stats.NORMALIZED_CAP
    assert drift_stats.normalized_wasserstein(ref, ref) == 0.0
