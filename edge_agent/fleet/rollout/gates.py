"""Health gates of a rollout wave and the controller's next step. Pure functions over data.

The controller gathers a :class:`WaveReading` from a :class:`HealthSource` (the one method it
needs; the monitor-backed source is ``health.MonitorHealth``) for the devices told to run the
new release, :func:`evaluate_gates` judges it against
:class:`GateThresholds`, and :func:`decide_step` turns the verdict, the wave's age and the
rollout's state into one action. Nothing here reads a clock, a database or the network, so
every rule is unit-tested on plain values.

A release published with several variants (``repo add-model PKG...``: int8 for a Pi, fp16 for
a Jetson, ...) is judged per variant as well: the reading carries one sub-reading per variant
the cohort runs, and each variant's error rate, latency, shadow agreement and drift are
checked on their own (checks named ``error_rate[digits_int8.tflite]``), so a variant that
fails is not averaged away by healthy devices on another; the failure names the variant.

Rules: any failing check fails the wave at once (a bad model is rolled back as soon as the
evidence is there, without waiting for the soak time); a wave advances only when every check
passes *and* it has soaked for ``soak_s``; a wave that neither passes nor fails within
``wave_timeout_s`` times out (rolled back: an unverified release is not left half-deployed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from edge_agent.errors import ConfigError

PASS, FAIL, WAIT = "pass", "fail", "wait"


@dataclass(frozen=True)
class GateThresholds:
    """Limits a wave must meet (units in the names)."""

    max_error_rate: float = 0.02
    """Failed inferences / all inferences on the new release."""
    max_latency_ratio: float = 1.5
    """New release p95 / previous release p95 (when the previous one has data)."""
    max_latency_p95_ms: float | None = None
    """Absolute p95 limit (None: only the ratio applies)."""
    min_agreement: float = 0.9
    """Shadow agreement with the previous release, from the devices' swap evidence."""
    require_agreement: bool = False
    """Wait for shadow evidence (True) or pass the check when no device reported any."""
    max_drift_alarm_devices: int = 1
    """Devices of the cohort that may be in drift alarm whatever the cohort's size."""
    max_drift_alarm_fraction: float = 0.1
    """Share of the cohort that may be in drift alarm: the wave fails above
    ``max(max_drift_alarm_devices, floor(fraction * cohort))`` (see docs/decisions.md)."""
    max_failed_fraction: float = 0.05
    """Devices that reported a failed / rejected install of the release, over the cohort."""
    min_coverage: float = 0.95
    """Devices of the opened waves that must report running the release before advancing."""
    min_inferences: int = 100
    """Inferences on the new release needed before the error rate is judged."""
    soak_s: float = 60.0
    """Shortest time a wave stays open before the next one opens."""
    wave_timeout_s: float = 900.0
    """Longest a wave may wait for its gates before the rollout is timed out (rolled back)."""
    window_s: float = 300.0
    """How far back the monitor's data is read (never before the wave opened)."""

    def __post_init__(self) -> None:
        bad = [
            name
            for name, ok in {
                "max_error_rate": 0 <= self.max_error_rate <= 1,
                "max_latency_ratio": self.max_latency_ratio > 0,
                "min_agreement": 0 <= self.min_agreement <= 1,
                "max_failed_fraction": 0 <= self.max_failed_fraction <= 1,
                "max_drift_alarm_devices": self.max_drift_alarm_devices >= 0,
                "max_drift_alarm_fraction": 0 <= self.max_drift_alarm_fraction <= 1,
                "min_coverage": 0 < self.min_coverage <= 1,
                "min_inferences": self.min_inferences >= 0,
                "soak_s": self.soak_s >= 0,
                "wave_timeout_s": self.wave_timeout_s > 0,
                "window_s": self.window_s > 0,
            }.items()
            if not ok
        ]
        if bad:
            raise ConfigError(f"invalid rollout gate thresholds: {', '.join(bad)} out of range")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (kept in the controller's state)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GateThresholds:
        """Inverse of :meth:`as_dict`; unknown keys are a ConfigError."""
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown gate threshold(s): {', '.join(sorted(unknown))}")
        return cls(**raw)


@dataclass(frozen=True)
class WaveReading:
    """What the monitor knows about the devices told to run the new release (the cohort)."""

    cohort: int
    """Devices in the opened waves."""
    on_release: int = 0
    """Of those, how many report running the new release."""
    online: int = 0
    failed: int = 0
    """Of those, how many reported a failed, rejected or rolled-back install of it."""
    inferences: int = 0
    errors: int = 0
    error_rate: float | None = None
    latency_p95_ms: float | None = None
    baseline_p95_ms: float | None = None
    """p95 of the previous release over the same window (None: unknown)."""
    shadow_agreement: float | None = None
    shadow_compared: int = 0
    drift_alarm_devices: tuple[str, ...] = ()
    variants: tuple[tuple[str, WaveReading], ...] = ()
    """Per variant of the release the cohort runs (its model file), the same values for the
    devices on it; empty when the cohort runs one variant (the whole reading is its)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (``variants`` becomes an object by variant name)."""
        data = {
            name: value
            for name, value in asdict(self).items()
            if name not in ("variants", "drift_alarm_devices")
        }
        data["drift_alarm_devices"] = list(self.drift_alarm_devices)
        if self.variants:
            data["variants"] = {name: part.as_dict() for name, part in self.variants}
        return data


class HealthSource(Protocol):
    """Gate values for the devices told to run ``release`` (the cohort).

    The controller depends on this alone, so it loads without the monitor package: the
    monitor's database answers through :class:`edge_agent.fleet.rollout.health.MonitorHealth`,
    tests through a scripted source.
    """

    def reading(
        self,
        model: str,
        release: int,
        previous: int | None,
        cohort: Sequence[str],
        window_s: float,
        group: Sequence[str] = (),
    ) -> WaveReading:
        """Read the cohort's health over the last ``window_s`` seconds.

        Every value comes from the ``cohort`` alone (a device outside it that runs the same
        model and version must not fail the wave); the previous release's latency baseline
        comes from the devices of ``group`` (the rollout's members; the cohort when empty).
        """
        ...


@dataclass(frozen=True)
class GateCheck:
    """One gate: its value, its limit and how it stands."""

    name: str
    status: str
    value: float | int | None
    limit: float | int | None
    note: str = ""


@dataclass(frozen=True)
class GateVerdict:
    """All checks and the overall outcome (``pass``, ``fail`` or ``wait``)."""

    outcome: str
    checks: tuple[GateCheck, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        """The failing checks, else the ones still waiting, else 'all gates pass'."""
        for wanted in (FAIL, WAIT):
            parts = [f"{c.name}: {c.note}" for c in self.checks if c.status == wanted]
            if parts:
                return "; ".join(parts)
        return "all gates pass"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (history, status --json, dashboard)."""
        return {"outcome": self.outcome, "checks": [asdict(c) for c in self.checks]}


def _fmt(value: float | None, unit: str = "") -> str:
    return "no data" if value is None else f"{value:.4g}{unit}"


def evaluate_gates(reading: WaveReading, limits: GateThresholds) -> GateVerdict:
    """Judge one reading, and each of its variants on its own. Pure."""
    checks: list[GateCheck] = []

    failed_fraction = reading.failed / reading.cohort if reading.cohort else 0.0
    checks.append(
        GateCheck(
            "failed_installs",
            FAIL if failed_fraction > limits.max_failed_fraction else PASS,
            round(failed_fraction, 4),
            limits.max_failed_fraction,
            f"{reading.failed} of {reading.cohort} devices failed to install it",
        )
    )

    checks.extend(_health_checks(reading, limits))

    coverage = reading.on_release / reading.cohort if reading.cohort else 0.0
    checks.append(
        GateCheck(
            "coverage",
            PASS if reading.cohort and coverage >= limits.min_coverage else WAIT,
            round(coverage, 4),
            limits.min_coverage,
            f"{reading.on_release} of {reading.cohort} devices run the release",
        )
    )

    for variant, part in reading.variants:
        for check in _health_checks(part, limits):
            checks.append(
                replace(check, name=f"{check.name}[{variant}]", note=f"{variant}: {check.note}")
            )

    statuses = {c.status for c in checks}
    outcome = FAIL if FAIL in statuses else WAIT if WAIT in statuses else PASS
    return GateVerdict(outcome, tuple(checks))


def _health_checks(reading: WaveReading, limits: GateThresholds) -> list[GateCheck]:
    """Error rate, latency, shadow agreement and drift of a reading.

    The reading is the whole cohort's, or that of the devices on one variant.
    """
    checks: list[GateCheck] = []
    if reading.error_rate is None or reading.inferences + reading.errors < limits.min_inferences:
        checks.append(
            GateCheck(
                "error_rate",
                WAIT,
                reading.error_rate,
                limits.max_error_rate,
                f"{reading.inferences + reading.errors} inferences so far, "
                f"{limits.min_inferences} needed",
            )
        )
    else:
        bad = reading.error_rate > limits.max_error_rate
        checks.append(
            GateCheck(
                "error_rate",
                FAIL if bad else PASS,
                round(reading.error_rate, 5),
                limits.max_error_rate,
                f"{_fmt(reading.error_rate)} {'>' if bad else '<='} {limits.max_error_rate:g}",
            )
        )

    checks.append(_latency_check(reading, limits))

    if reading.shadow_agreement is None or reading.shadow_compared == 0:
        status = WAIT if limits.require_agreement else PASS
        checks.append(
            GateCheck("shadow_agreement", status, None, limits.min_agreement, "no shadow evidence")
        )
    else:
        bad = reading.shadow_agreement < limits.min_agreement
        checks.append(
            GateCheck(
                "shadow_agreement",
                FAIL if bad else PASS,
                round(reading.shadow_agreement, 4),
                limits.min_agreement,
                f"{reading.shadow_agreement:.3f} {'<' if bad else '>='} "
                f"{limits.min_agreement:g} over {reading.shadow_compared} comparisons",
            )
        )

    alarms = len(reading.drift_alarm_devices)
    allowed = drift_alarms_allowed(reading.cohort, limits)
    checks.append(
        GateCheck(
            "drift",
            FAIL if alarms > allowed else PASS,
            alarms,
            allowed,
            f"{alarms} device(s) in drift alarm"
            + (f": {', '.join(reading.drift_alarm_devices[:5])}" if alarms else ""),
        )
    )
    return checks


def drift_alarms_allowed(cohort: int, limits: GateThresholds) -> int:
    """Devices of a cohort of ``cohort`` that may be in drift alarm without failing the wave.

    A drift alarm is mostly the scene (a camera moved, the light changed), which a release does
    not cause; a bad release shows in the error rate, the shadow agreement and in many devices'
    drift at once. So a bounded share is tolerated, and at least ``max_drift_alarm_devices``,
    so that one canary of a small wave does not decide alone. Pure.
    """
    share = int(limits.max_drift_alarm_fraction * cohort + 1e-9)
    return max(limits.max_drift_alarm_devices, share)


def _latency_check(reading: WaveReading, limits: GateThresholds) -> GateCheck:
    p95 = reading.latency_p95_ms
    if p95 is None:
        return GateCheck("latency_p95", WAIT, None, limits.max_latency_p95_ms, "no latency data")
    if limits.max_latency_p95_ms is not None and p95 > limits.max_latency_p95_ms:
        return GateCheck(
            "latency_p95",
            FAIL,
            round(p95, 3),
            limits.max_latency_p95_ms,
            f"p95 {p95:.3g} ms > {limits.max_latency_p95_ms:g} ms",
        )
    baseline = reading.baseline_p95_ms
    if baseline is not None and baseline > 0:
        ratio = p95 / baseline
        bad = ratio > limits.max_latency_ratio
        return GateCheck(
            "latency_p95",
            FAIL if bad else PASS,
            round(p95, 3),
            round(baseline * limits.max_latency_ratio, 3),
            f"p95 {p95:.3g} ms is {ratio:.2f}x the previous release's {baseline:.3g} ms "
            f"({'>' if bad else '<='} {limits.max_latency_ratio:g}x)",
        )
    return GateCheck(
        "latency_p95", PASS, round(p95, 3), limits.max_latency_p95_ms, f"p95 {p95:.3g} ms"
    )


@dataclass(frozen=True)
class Decision:
    """The controller's next step.

    ``advance``, ``complete``, ``wait``, ``roll_back``, ``time_out`` or ``none`` (the rollout
    is not running).
    """

    action: str
    reason: str


def decide_step(
    status: str,
    waves: int,
    opened: int,
    wave_opened_at: float,
    verdict: GateVerdict,
    now: float,
    limits: GateThresholds,
) -> Decision:
    """What to do now. ``status`` is the rollout's (``rolling`` / ``paused`` / ended). Pure.

    A paused rollout never advances and never times out (the operator holds it), but a failing
    gate still rolls it back: pausing must not keep a bad release on devices.
    """
    if status not in ("rolling", "paused"):
        return Decision("none", f"rollout is {status}")
    age = now - wave_opened_at
    if verdict.outcome == FAIL:
        return Decision("roll_back", f"wave {opened} failed its gates: {verdict.reason}")
    if status == "paused":
        return Decision("wait", "paused by the operator")
    if verdict.outcome == PASS and age >= limits.soak_s:
        if opened >= waves:
            return Decision("complete", f"all {waves} waves passed their gates")
        return Decision("advance", f"wave {opened} passed its gates after {age:.0f} s")
    if age > limits.wave_timeout_s:
        return Decision(
            "time_out",
            f"wave {opened} did not pass its gates within {limits.wave_timeout_s:g} s "
            f"({verdict.reason})",
        )
    if verdict.outcome == PASS:
        return Decision("wait", f"gates pass; soaking {age:.0f}/{limits.soak_s:g} s")
    return Decision("wait", verdict.reason)
