"""Health-gated hot swap: shadow-check a candidate version, activate it, watch it, roll back.

1. The candidate is loaded beside the active version (by the caller).
2. Shadow check: both versions are warmed up (untimed), then the buffered recent requests are
   replayed on the candidate and on the active version in turn, each pair timed on the same
   input in the same moment; then live traffic is mirrored to the candidate for
   ``shadow_seconds`` on a background thread (bounded queue: under load mirror requests are
   dropped, never the live ones). Agreement, errors and latency are compared.
3. Pass: ``ServedModel.swap`` makes it active (requests in flight finish on the old version);
   the old version stays loaded as the rollback target. Fail: the candidate is closed.
4. Watch: for ``watch_seconds`` the new version's errors and latency are judged; a breach swaps
   the previous version back automatically. ``rollback()`` does the same on demand.

Every step is reported through ``on_event`` (the daemon publishes it on the rollout topic).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_agent.config import SwapGateSettings
from edge_agent.errors import ModelError
from edge_agent.runtime.timing import take_queue_wait
from edge_agent.serving.gates import Evidence, judge_shadow, judge_watch, outputs_agree
from edge_agent.serving.served import InferenceResult, LoadedVersion, ServedModel
from edge_agent.wire.states import SwapState

log = logging.getLogger(__name__)

Event = dict[str, Any]

WARMUP_RUNS = 2
"""Untimed inferences on each version before its shadow timing: a freshly loaded model's first
runs allocate and compile, and timing them let a lighter candidate lose the latency gate."""


@dataclass
class Verdict:
    """The outcome of a shadow check."""

    ok: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    conclusive: bool = True
    """False when there was too little traffic to judge (not a verdict on the model)."""


class SwapController:
    """Owns version changes of one ServedModel."""

    def __init__(
        self,
        served: ServedModel,
        gates: SwapGateSettings,
        *,
        on_event: Callable[[Event], None] = lambda event: None,
        buffer_size: int = 64,
        buffer_every: int = 8,
    ) -> None:
        self.served = served
        self.gates = gates
        self._on_event = on_event
        self._recent: deque[tuple[Mapping[str, np.ndarray], dict[str, np.ndarray]]] = deque(
            maxlen=buffer_size
        )
        self._buffer_every = max(1, buffer_every)
        self._seen = 0
        self._mirror: queue.Queue[tuple[Mapping[str, np.ndarray], InferenceResult]] | None = None
        self.previous: LoadedVersion | None = None
        self.last_verdict: Verdict | None = None
        self._watch: _Watch | None = None
        self._lock = threading.RLock()
        self.lock = self._lock
        """Held by a caller whose steps must not interleave with another swap (re-entrant)."""
        served.add_observer(self._observe)
        served.add_error_observer(self._observe_error)

    # -- observers (hot path: O(1)) ----------------------------------------------------------

    def _observe(self, inputs: Mapping[str, np.ndarray], result: InferenceResult) -> None:
        self._seen += 1
        if self._seen % self._buffer_every == 0:
            self._recent.append(({k: np.array(v) for k, v in inputs.items()}, result.outputs))
        mirror = self._mirror
        if mirror is not None:
            with contextlib.suppress(queue.Full):  # the shadow is behind: live traffic never waits
                mirror.put_nowait((inputs, result))
        watch = self._watch
        if watch is not None and result.version == watch.version:
            watch.record(result.latency_s, failed=False)

    def _observe_error(self, version: str, _error: BaseException) -> None:
        watch = self._watch
        if watch is not None and version == watch.version:
            watch.record(0.0, failed=True)

    # -- the swap ----------------------------------------------------------------------------

    def try_candidate(self, candidate: LoadedVersion, why: str = "") -> Verdict:
        """Shadow-check ``candidate``; activate it when the gates pass, else close it.

        ``why`` says what asked for the swap (a release, the power policy) in the first event.
        """
        with self._lock:
            started = f"shadow check started ({why})" if why else "shadow check started"
            self._emit(SwapState.SHADOW, candidate.version, started)
            evidence = Evidence(candidate_latencies_s=[], active_latencies_s=[])
            live: list[float] = []
            self._replay_buffer(candidate, evidence)
            self._mirror_live(candidate, evidence, live)
            ok, reason = judge_shadow(evidence, self.gates)
            judged = evidence.compared + evidence.errors >= self.gates.min_samples
            verdict = Verdict(ok, reason, evidence.summary(), conclusive=judged)
            self.last_verdict = verdict
            if not ok:
                candidate.drain_and_close(timeout_s=5)
                self._emit(SwapState.REJECTED, candidate.version, reason, verdict.evidence)
                return verdict
            self._finish_watch()
            old = self.served.swap(candidate)
            if self.previous is not None:
                self.previous.drain_and_close()
            self.previous = old
            baseline = evidence.p95_ms(live)  # the watch times live requests, queue included
            self._watch = _Watch(candidate.version, baseline, self.gates, self._rollback_from_watch)
            self._emit(SwapState.ACTIVE, candidate.version, reason, verdict.evidence)
            return verdict

    def rollback(self, reason: str) -> LoadedVersion:
        """Make the previous version active again now (operator-forced or a failed watch)."""
        with self._lock:
            if self.previous is None:
                raise ModelError(f"{self.served.name}: no previous version to roll back to")
            self._finish_watch()
            restored, self.previous = self.previous, None
            rejected = self.served.swap(restored)
            rejected.drain_and_close()
            self._emit(
                SwapState.ROLLED_BACK, rejected.version, reason, {"restored": restored.version}
            )
            return restored

    def restore(self, reason: str) -> LoadedVersion:
        """Make the previous version active again because the current one was temporary.

        The power policy's light variant leaves this way when saving ends: it did not fail, so
        this is no rollback (which the monitor and the rollout gates count as a failure and
        which rolls a delivered release back in the store); the restored version is reported
        ``active`` with ``reason``. It is the version that served before the light one, so no
        shadow check stands in its way (a slower model would fail the light one's latency).
        """
        with self._lock:
            if self.previous is None:
                raise ModelError(f"{self.served.name}: no previous version to restore")
            self._finish_watch()
            restored, self.previous = self.previous, None
            left = self.served.swap(restored)
            left.drain_and_close()
            self._emit(SwapState.ACTIVE, restored.version, reason, {"replaced": left.version})
            return restored

    @property
    def watching(self) -> str | None:
        """The version whose watch window runs now, or None."""
        watch = self._watch
        return watch.version if watch is not None and not watch.expired() else None

    def refuse(self, version: str, reason: str) -> None:
        """Report a candidate refused before its shadow check (it did not even load)."""
        self._emit(SwapState.REJECTED, version, reason)

    def watch_expired(self) -> bool:
        """End the watch window if its time is up; True when no watch is running any more."""
        with self._lock:
            if self._watch is not None and self._watch.expired():
                self._emit(SwapState.WATCH_PASSED, self._watch.version, "watch window passed")
                self._watch = None
            return self._watch is None

    def close(self) -> None:
        """Release the rollback target (the active version is closed by its owner)."""
        with self._lock:
            self._watch = None
            if self.previous is not None:
                self.previous.drain_and_close()
                self.previous = None

    # -- internals ---------------------------------------------------------------------------

    def _replay_buffer(self, candidate: LoadedVersion, evidence: Evidence) -> None:
        """Replay the recent requests on the candidate and on the active version, in turn.

        Each pair is timed on the same input within moments of each other, so the latency gate
        compares like with like even when live traffic is thin (paced to 2 frames/s when the
        power policy starts saving) or the machine is busy; the candidate is judged against
        the active version's answers now, not the buffered ones of whichever version served
        then.
        """
        recent = list(self._recent)
        if not recent:
            return
        active = self.served.active
        for version in (candidate, active):
            for _ in range(WARMUP_RUNS):
                with contextlib.suppress(Exception):  # a failing candidate fails when timed
                    version.backend.run(recent[0][0])
                take_queue_wait()
        for inputs, buffered in recent:
            try:
                outputs, latency = _timed(active, inputs)
            except Exception:  # the active version's trouble is no evidence on the candidate
                outputs, latency = buffered, None
            self._compare(candidate, inputs, outputs, latency, evidence)

    def _mirror_live(self, candidate: LoadedVersion, evidence: Evidence, live: list[float]) -> None:
        if self.gates.shadow_seconds <= 0:
            return
        mirror: queue.Queue[tuple[Mapping[str, np.ndarray], InferenceResult]] = queue.Queue(64)
        self._mirror = mirror
        deadline = time.monotonic() + self.gates.shadow_seconds
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    inputs, result = mirror.get(timeout=min(remaining, 0.1))
                except queue.Empty:
                    continue
                live.append(result.latency_s)
                compute_s = max(0.0, result.latency_s - result.queue_s)
                self._compare(candidate, inputs, result.outputs, compute_s, evidence)
        finally:
            self._mirror = None

    @staticmethod
    def _compare(
        candidate: LoadedVersion,
        inputs: Mapping[str, np.ndarray],
        active_outputs: dict[str, np.ndarray],
        active_latency: float | None,
        evidence: Evidence,
    ) -> None:
        try:
            outputs, latency = _timed(candidate, inputs)
        except Exception as exc:  # a failing candidate is evidence, not a crash
            evidence.errors += 1
            log.info("candidate %s failed a shadow inference: %s", candidate.version, exc)
            return
        assert evidence.candidate_latencies_s is not None
        evidence.candidate_latencies_s.append(latency)
        if active_latency is not None and evidence.active_latencies_s is not None:
            evidence.active_latencies_s.append(active_latency)
        evidence.compared += 1
        evidence.agreed += outputs_agree(outputs, active_outputs)

    def _finish_watch(self) -> None:
        self._watch = None

    def _rollback_from_watch(self, reason: str) -> None:
        threading.Thread(target=self._safe_rollback, args=(reason,), daemon=True).start()

    def _safe_rollback(self, reason: str) -> None:
        try:
            self.rollback(reason)
        except ModelError as exc:
            log.error("automatic rollback failed: %s", exc)

    def _emit(
        self, state: SwapState, version: str, reason: str, evidence: Mapping[str, Any] | None = None
    ) -> None:
        event: Event = {
            "model": self.served.name,
            "version": version,
            "state": state.value,
            "reason": reason,
            "time": time.time(),
        }
        if evidence:
            event["evidence"] = dict(evidence)
        log.info("%s v%s: %s (%s)", self.served.name, version, state.value, reason)
        try:
            self._on_event(event)
        except Exception:
            log.exception("swap event listener failed")


def _timed(
    version: LoadedVersion, inputs: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], float]:
    """Run one inference; its compute time, without waiting for a backend busy elsewhere."""
    take_queue_wait()
    start = time.perf_counter()
    outputs = version.backend.run(inputs)
    return outputs, max(0.0, time.perf_counter() - start - take_queue_wait())


class _Watch:
    """Errors and latency of a freshly activated version, judged as they come in."""

    def __init__(
        self,
        version: str,
        baseline_p95_ms: float | None,
        gates: SwapGateSettings,
        on_breach: Callable[[str], None],
    ) -> None:
        self.version = version
        self._baseline = baseline_p95_ms
        self._gates = gates
        self._on_breach = on_breach
        self._until = time.monotonic() + gates.watch_seconds
        self._latencies: deque[float] = deque(maxlen=512)
        self._requests = 0
        self._errors = 0
        self._fired = False

    def expired(self) -> bool:
        return time.monotonic() > self._until

    def record(self, latency_s: float, failed: bool) -> None:
        if self._fired or self.expired():
            return
        self._requests += 1
        if failed:
            self._errors += 1
        else:
            self._latencies.append(latency_s)
        if self._requests % 16 and not failed:
            return  # judge every 16th request, and on every error: O(1) amortized
        p95 = float(np.percentile(self._latencies, 95) * 1000) if self._latencies else None
        reason = judge_watch(self._requests, self._errors, p95, self._baseline, self._gates)
        if reason is not None:
            self._fired = True
            self._on_breach(reason)
