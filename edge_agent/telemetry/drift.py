"""Drift detection: compare window profiles with the reference, raise alarms with hysteresis.

Flow: the hot path calls :meth:`DriftMonitor.observe` (a sampler skip counter and a bounded
deque append: O(1), no lock, never blocks; a full queue drops and counts). A worker thread
drains the queue, closes a window every ``window_size`` samples (or ``window_s`` seconds),
profiles it against the reference (:func:`edge_agent.telemetry.profile.build_profile`),
scores it (:func:`score_window`, pure) and steps the alarm state machine
(:func:`step_alarm`, pure). Each closed window is emitted as a report dict (window profile +
statistics + alarm states and transitions) to a callback, normally the outbox.

Signals, each with its own alarm:

* ``input``: per-feature PSI, KS and normalised Wasserstein; a feature drifts when any crosses
  its threshold, the signal when at least ``min_features`` features drift;
* ``prediction``: PSI of the predicted-class distribution and of the confidence histogram;
* ``quality``: NaN, out-of-range and constant-sample rates.

Hysteresis: an alarm raises after ``raise_after`` consecutive drifting windows and clears after
``clear_after`` consecutive *calm* windows, calm meaning every statistic below threshold x
``clear_ratio``; windows in between keep the current state and reset both counters' progress.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from edge_agent.config import DriftSettings, DriftThresholds
from edge_agent.telemetry import drift_stats
from edge_agent.telemetry.profile import Profile, build_profile
from edge_agent.telemetry.sampler import Sampler

log = logging.getLogger(__name__)

SIGNALS = ("input", "prediction", "quality")
AlarmLevel = Literal["ok", "alarm"]


@dataclass(frozen=True)
class SignalScore:
    """How far one signal is from its thresholds in a window.

    ``severity`` is the largest statistic / threshold ratio (>= 1: drifting); ``calm`` is true
    when every ratio is below the clear ratio.
    """

    severity: float
    drifting: bool
    calm: bool
    detail: dict[str, Any]


def ks_threshold(c: float, n: int, m: int) -> float:
    """KS critical value c * sqrt((n+m)/(n m)) for sample sizes n and m."""
    if n <= 0 or m <= 0:
        return math.inf
    return c * math.sqrt((n + m) / (n * m))


def psi_threshold(base: float, bins: int, n: int, m: int) -> float:
    """PSI threshold above sampling noise: ``base`` + the null expectation (bins-1)(1/n+1/m).

    Two samples of the same distribution have an expected PSI of about (bins-1)(1/n + 1/m)
    (PSI is asymptotically chi-square scaled by 1/n + 1/m), which for a window of 100 and 10
    bins is already 0.1: without this term small windows would raise false alarms.
    """
    if n <= 0 or m <= 0:
        return math.inf
    return base + max(bins - 1, 0) * (1.0 / n + 1.0 / m)


def feature_statistics(reference: Profile, window: Profile) -> dict[str, dict[str, float]]:
    """PSI, KS and normalised Wasserstein of every feature of the window."""
    out: dict[str, dict[str, float]] = {}
    for name, ref_hist in reference.features.items():
        win_hist = window.features.get(name)
        if win_hist is None or win_hist.count == 0:
            continue
        out[name] = {
            "psi": drift_stats.psi(ref_hist, win_hist),
            "ks": drift_stats.ks(ref_hist, win_hist),
            "wasserstein": drift_stats.normalized_wasserstein(ref_hist, win_hist),
        }
    return out


def _ratio(value: float, threshold: float) -> float:
    return value / threshold if threshold > 0 else 0.0


def score_window(
    reference: Profile, window: Profile, thresholds: DriftThresholds, clear_ratio: float
) -> dict[str, SignalScore]:
    """Score a window against the reference: one :class:`SignalScore` per signal. Pure."""
    stats = feature_statistics(reference, window)
    ks_limit = ks_threshold(thresholds.ks, window.samples, reference.samples)
    ratios: dict[str, float] = {}
    for name, s in stats.items():
        bins = int(np.count_nonzero(reference.features[name].counts))
        psi_limit = psi_threshold(thresholds.psi, bins, window.samples, reference.samples)
        ratios[name] = max(
            _ratio(s["psi"], psi_limit),
            _ratio(s["ks"], ks_limit),
            _ratio(s["wasserstein"], thresholds.wasserstein),
        )
    drifting_features = sorted((n for n, r in ratios.items() if r >= 1.0), key=lambda n: -ratios[n])
    ordered = sorted(ratios.values(), reverse=True)
    k = thresholds.min_features
    input_severity = ordered[k - 1] if len(ordered) >= k else 0.0
    scores = {
        "input": SignalScore(
            severity=input_severity,
            drifting=len(drifting_features) >= k,
            calm=(ordered[0] if ordered else 0.0) < clear_ratio,
            detail={
                "features": stats,
                "drifting_features": drifting_features,
                "ks_threshold": ks_limit,
                "ratios": ratios,
            },
        )
    }

    pred: dict[str, float] = {}
    limits: dict[str, float] = {}
    n, m = window.samples, reference.samples
    if reference.class_counts is not None and window.class_counts is not None:
        pred["class_psi"] = drift_stats.psi_from_counts(reference.class_counts, window.class_counts)
        bins = int(np.count_nonzero(reference.class_counts))
        limits["class_psi"] = psi_threshold(thresholds.prediction_psi, bins, n, m)
    if reference.confidence is not None and window.confidence is not None:
        pred["confidence_psi"] = drift_stats.psi(reference.confidence, window.confidence)
        pred["confidence_mean"] = window.confidence.mean() or 0.0
        pred["reference_confidence_mean"] = reference.confidence.mean() or 0.0
        bins = int(np.count_nonzero(reference.confidence.counts))
        limits["confidence_psi"] = psi_threshold(thresholds.prediction_psi, bins, n, m)
    pred_ratio = max((_ratio(pred[k], limits[k]) for k in limits), default=0.0)
    scores["prediction"] = SignalScore(
        pred_ratio, pred_ratio >= 1.0, pred_ratio < clear_ratio, pred
    )

    q = window.quality
    n = max(q.samples, 1)
    rates = {
        "nan_rate": q.nan_samples / n,
        "out_of_range_rate": q.out_of_range_samples / n,
        "constant_rate": q.constant_samples / n,
    }
    q_limits = {
        "nan_rate": thresholds.nan_rate,
        "out_of_range_rate": thresholds.out_of_range_rate,
        "constant_rate": thresholds.constant_rate,
    }
    quality_ratio = max(
        (rates[k] / q_limits[k] if q_limits[k] > 0 else (math.inf if rates[k] > 0 else 0.0))
        for k in rates
    )
    quality_ratio = min(quality_ratio, drift_stats.NORMALIZED_CAP)
    scores["quality"] = SignalScore(
        quality_ratio, quality_ratio >= 1.0, quality_ratio < clear_ratio, rates
    )
    return scores


@dataclass(frozen=True)
class AlarmState:
    """The hysteresis state of one alarm."""

    level: AlarmLevel = "ok"
    drifting_streak: int = 0
    calm_streak: int = 0


def step_alarm(
    state: AlarmState, drifting: bool, calm: bool, raise_after: int, clear_after: int
) -> AlarmState:
    """Next alarm state after one window. Pure: no clock, no I/O."""
    drifting_streak = state.drifting_streak + 1 if drifting else 0
    calm_streak = state.calm_streak + 1 if calm else 0
    level = state.level
    if level == "ok" and drifting_streak >= raise_after:
        level = "alarm"
    elif level == "alarm" and calm_streak >= clear_after:
        level = "ok"
    return replace(state, level=level, drifting_streak=drifting_streak, calm_streak=calm_streak)


@dataclass
class WindowResult:
    """One evaluated window: its profile, scores and the alarm states after it."""

    profile: Profile
    scores: dict[str, SignalScore]
    alarms: dict[str, AlarmState]
    transitions: list[dict[str, str]]

    def report(self, model: str, window_index: int, dropped: int) -> dict[str, Any]:
        """The JSON report sent on the drift channel."""
        return {
            "model": model,
            "window": window_index,
            "samples": self.profile.samples,
            "dropped_samples": dropped,
            "signals": {
                name: {
                    "severity": s.severity,
                    "drifting": s.drifting,
                    "alarm": self.alarms[name].level,
                    "detail": s.detail,
                }
                for name, s in self.scores.items()
            },
            "transitions": self.transitions,
            "profile": self.profile.to_dict(),
        }


class DriftDetector:
    """Evaluates closed windows against a reference; keeps the alarm states. No threads."""

    def __init__(self, reference: Profile, settings: DriftSettings) -> None:
        """Detector for one model; ``reference`` must be a reference profile."""
        self.reference = reference
        self.settings = settings
        self.alarms = {name: AlarmState() for name in SIGNALS}

    def evaluate(self, window: Profile) -> WindowResult:
        """Score ``window`` and advance every alarm."""
        s = self.settings
        scores = score_window(self.reference, window, s.thresholds, s.clear_ratio)
        transitions = []
        for name, score in scores.items():
            before = self.alarms[name]
            after = step_alarm(before, score.drifting, score.calm, s.raise_after, s.clear_after)
            if after.level != before.level:
                transitions.append({"signal": name, "from": before.level, "to": after.level})
            self.alarms[name] = after
        return WindowResult(window, scores, dict(self.alarms), transitions)

    def evaluate_batch(
        self, inputs: np.ndarray, outputs: np.ndarray | None, meta: dict[str, Any] | None = None
    ) -> WindowResult:
        """Profile a batch as one window against the reference and evaluate it."""
        return self.evaluate(build_profile(inputs, outputs, reference=self.reference, meta=meta))


class DriftMonitor:
    """The off-hot-path drift pipeline of one model: bounded queue + worker thread."""

    def __init__(
        self,
        model: str,
        reference: Profile,
        settings: DriftSettings,
        emit: Callable[[dict[str, Any]], None],
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        """``emit`` receives each window report (on the worker thread)."""
        self.model = model
        self.settings = settings
        self.detector = DriftDetector(reference, settings)
        self.emit = emit
        self.clock = clock
        self.sampler = Sampler(settings.sample_rate, seed=seed)
        self._queue: deque[tuple[Any, Any]] = deque()
        self._queue_max = settings.queue_max
        self.dropped = 0
        self.windows = 0
        self.last_report: dict[str, Any] | None = None
        """The report of the last closed window (for ``/metrics``)."""
        self._pending_x: list[np.ndarray] = []
        self._pending_y: list[np.ndarray] = []
        self._pending_n = 0
        self._window_start = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(self, inputs: Any, outputs: Any) -> None:
        """Hot path: maybe queue this inference's (batch) input and output. Never blocks.

        The arrays are kept by reference until the worker profiles them: pass arrays that are
        not overwritten afterwards (runtime outputs are fresh arrays).
        """
        if not self.sampler.should_sample():
            return
        if len(self._queue) >= self._queue_max:
            self.dropped += 1
            return
        self._queue.append((inputs, outputs))

    @property
    def queue_depth(self) -> int:
        """Samples waiting for the worker."""
        return len(self._queue)

    def process_pending(self, force_close: bool = False) -> list[dict[str, Any]]:
        """Drain the queue into windows; emit and return the reports of closed windows."""
        reports = []
        while self._queue:
            x, y = self._queue.popleft()
            x = np.asarray(x)
            self._pending_x.append(x)
            if y is not None:
                self._pending_y.append(np.asarray(y))
            self._pending_n += len(x)
            if self._pending_n >= self.settings.window_size:
                reports.append(self._close_window())
        expired = self.clock() - self._window_start >= self.settings.window_s
        if self._pending_n >= self.settings.min_window and (expired or force_close):
            reports.append(self._close_window())
        return reports

    def _close_window(self) -> dict[str, Any]:
        inputs = np.concatenate(self._pending_x)
        outputs = (
            np.concatenate(self._pending_y)
            if len(self._pending_y) == len(self._pending_x)
            else None
        )
        now = self.clock()
        meta = {"model": self.model, "start": self._window_start, "end": now}
        self._pending_x, self._pending_y, self._pending_n = [], [], 0
        self._window_start = now
        result = self.detector.evaluate_batch(inputs, outputs, meta)
        self.windows += 1
        report = result.report(self.model, self.windows, self.dropped)
        self.last_report = report
        for t in result.transitions:
            log.warning(
                "drift alarm for model %s: %s %s -> %s", self.model, t["signal"], t["from"], t["to"]
            )
        self.emit(report)
        return report

    def start(self, poll_s: float = 0.05) -> None:
        """Start the worker thread (daemon thread; call :meth:`stop` to end it)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(poll_s,), name=f"drift-{self.model}", daemon=True
        )
        self._thread.start()

    def _run(self, poll_s: float) -> None:
        while not self._stop.wait(poll_s):
            try:
                self.process_pending()
            except Exception:  # a bad window must not kill the worker
                log.exception("drift worker for model %s failed on a window", self.model)

    def stop(self) -> None:
        """Stop the worker and process what is queued (no partial window is forced)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.process_pending()
