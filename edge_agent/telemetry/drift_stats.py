"""Two-sample drift statistics in numpy: PSI, Kolmogorov-Smirnov and Wasserstein-1.

Each comes in two forms: on raw samples (exact; used in tests against scipy and by tools that
hold the data) and on profile histograms (what the device and the monitor hold: windows are
summarised by fixed-edge histograms, see :mod:`edge_agent.telemetry.profile`). scipy is not
needed: it is heavy for a Raspberry Pi and these statistics are a few lines of numpy.

Histogram forms and their approximation:

* **PSI** is defined on bins, so the histogram form is exact for the bins it uses
  (reference quantile bins plus under/over-flow bins).
* **KS** is evaluated at the bin edges, where both empirical CDFs are known exactly: a lower
  bound of the raw-sample KS, within one bin's reference mass of it.
* **Wasserstein-1** places each bin's mass at the mean of the values that fell in it (profiles
  keep per-bin sums), then computes the exact distance between those discrete distributions.
"""

from __future__ import annotations

import numpy as np

from edge_agent.telemetry.histogram import Histogram

PSI_PSEUDOCOUNT = 0.5
"""Added to every bin's count before PSI (Jeffreys smoothing). An empty bin then gives a finite
term, and a bin left empty by chance in a small window does not read as drift (a fixed floor
such as 1e-4 makes one empty bin of a 50-sample window worth PSI 0.7)."""

NORMALIZED_CAP = 1e6
"""Upper bound of the normalised Wasserstein distance (keeps reports valid JSON)."""


def psi_from_counts(
    reference: np.ndarray, window: np.ndarray, pseudocount: float = PSI_PSEUDOCOUNT
) -> float:
    """Population stability index of two count vectors over the same bins (smoothed)."""
    ref = np.asarray(reference, dtype=np.float64)
    win = np.asarray(window, dtype=np.float64)
    if ref.sum() <= 0 or win.sum() <= 0:
        return 0.0
    p = (ref + pseudocount) / (ref.sum() + pseudocount * ref.size)
    q = (win + pseudocount) / (win.sum() + pseudocount * win.size)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_from_samples(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample KS statistic (max distance of the empirical CDFs); scipy's ks_2samp value."""
    a = np.sort(np.asarray(a, dtype=np.float64).ravel())
    b = np.sort(np.asarray(b, dtype=np.float64).ravel())
    if a.size == 0 or b.size == 0:
        return 0.0
    points = np.concatenate((a, b))
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def wasserstein_weighted(
    u_values: np.ndarray,
    v_values: np.ndarray,
    u_weights: np.ndarray | None = None,
    v_weights: np.ndarray | None = None,
) -> float:
    """Wasserstein-1 distance of two weighted 1-D distributions (scipy's definition)."""
    u = np.asarray(u_values, dtype=np.float64).ravel()
    v = np.asarray(v_values, dtype=np.float64).ravel()
    uw = np.ones_like(u) if u_weights is None else np.asarray(u_weights, dtype=np.float64)
    vw = np.ones_like(v) if v_weights is None else np.asarray(v_weights, dtype=np.float64)
    keep_u, keep_v = uw > 0, vw > 0
    u, uw, v, vw = u[keep_u], uw[keep_u], v[keep_v], vw[keep_v]
    if u.size == 0 or v.size == 0:
        return 0.0
    u_order, v_order = np.argsort(u), np.argsort(v)
    u, uw, v, vw = u[u_order], uw[u_order], v[v_order], vw[v_order]
    points = np.sort(np.concatenate((u, v)))
    deltas = np.diff(points)
    u_cdf = np.concatenate(([0.0], np.cumsum(uw)))[np.searchsorted(u, points[:-1], "right")]
    v_cdf = np.concatenate(([0.0], np.cumsum(vw)))[np.searchsorted(v, points[:-1], "right")]
    return float(np.sum(np.abs(u_cdf / uw.sum() - v_cdf / vw.sum()) * deltas))


def psi(reference: Histogram, window: Histogram) -> float:
    """PSI over the reference's bins (including the under/over-flow bins)."""
    return psi_from_counts(reference.counts, window.counts)


def ks(reference: Histogram, window: Histogram) -> float:
    """KS statistic evaluated at the bin edges (see the module docstring)."""
    n_ref, n_win = reference.count, window.count
    if not n_ref or not n_win:
        return 0.0
    cdf_ref = np.cumsum(reference.counts)[:-1] / n_ref
    cdf_win = np.cumsum(window.counts)[:-1] / n_win
    return float(np.max(np.abs(cdf_ref - cdf_win)))


def _bin_means(hist: Histogram) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hist.counts > 0, hist.sums / np.maximum(hist.counts, 1), 0.0)


def wasserstein(reference: Histogram, window: Histogram) -> float:
    """Wasserstein-1 with each bin's mass at its mean value (see the module docstring)."""
    return wasserstein_weighted(
        _bin_means(reference), _bin_means(window), reference.counts, window.counts
    )


def normalized_wasserstein(reference: Histogram, window: Histogram) -> float:
    """Wasserstein-1 divided by the reference's standard deviation (unit-free threshold)."""
    scale = reference.std() or 0.0
    distance = wasserstein(reference, window)
    if scale <= 0:  # a constant reference feature: any movement is maximal drift
        return 0.0 if distance == 0 else NORMALIZED_CAP
    return min(distance / scale, NORMALIZED_CAP)
