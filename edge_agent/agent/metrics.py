"""The agent's state on ``/metrics``: pipelines, drift, power, outbox, updates and capture.

Request counters and latency histograms are counted on the hot path by
:class:`~edge_agent.serving.metrics.ServingMetrics`. Everything here is a reading of state the
agent keeps anyway, taken when Prometheus scrapes (a custom collector), so it costs nothing per
inference and can never disagree with telemetry: power and temperature come from the same
sensor reading the power policy and the telemetry report used.

Names follow Prometheus conventions (base units, ``_total`` for counters, ``_ratio`` for 0..1)
and ``promtool check metrics`` passes on them (tested). Labels are bounded by the device's
config: pipeline and model names, drift signals, outbox priorities, update states, thermal
zones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "edge_agent"


class _Stats(Protocol):
    def stats(self) -> dict[str, Any]: ...


class _Telemetry(Protocol):
    @property
    def drift(self) -> Any: ...

    @property
    def outbox(self) -> Any: ...

    @property
    def power(self) -> Any: ...

    @property
    def last_snapshot(self) -> Any: ...

    @property
    def energy_per_inference_j(self) -> float | None: ...


class _Updates(Protocol):
    @property
    def manager(self) -> Any: ...


class AgentState(Protocol):
    """What the collector reads; :class:`~edge_agent.agent.process.Agent` has all of it."""

    @property
    def pipelines(self) -> Sequence[_Stats]: ...

    @property
    def telemetry(self) -> _Telemetry | None: ...

    @property
    def capture(self) -> _Stats | None: ...

    @property
    def uploader(self) -> _Stats | None: ...

    @property
    def updates(self) -> _Updates | None: ...


class AgentCollector(Collector):
    """Reads the agent's components at scrape time."""

    def __init__(self, agent: AgentState) -> None:
        self._agent = agent

    def collect(self) -> Iterable[Metric]:
        """One scrape's families (empty ones are left out by the exposition)."""
        agent = self._agent
        yield from _pipelines(agent.pipelines)
        if agent.telemetry is not None:
            yield from _drift(agent.telemetry.drift)
            yield from _power(agent.telemetry)
            yield from _outbox(agent.telemetry.outbox.stats())
        if agent.updates is not None:
            yield _update_state(agent.updates.manager.state)
        if agent.capture is not None:
            yield from _capture(agent.capture.stats())
        if agent.uploader is not None:
            yield from _uploads(agent.uploader.stats())


def _name(suffix: str) -> str:
    return f"{PREFIX}_{suffix}"


def _pipelines(pipelines: Sequence[_Stats]) -> Iterator[Metric]:
    labels = ["pipeline", "model"]
    frames_in = CounterMetricFamily(
        _name("pipeline_frames_in"), "Frames the pipeline's source delivered.", labels=labels
    )
    processed = CounterMetricFamily(
        _name("pipeline_frames_processed"),
        "Frames run through the model and handed to the sinks.",
        labels=labels,
    )
    dropped = CounterMetricFamily(
        _name("pipeline_frames_dropped"),
        "Frames the source dropped because the model was busy (latest-frame-wins).",
        labels=labels,
    )
    errors = CounterMetricFamily(
        _name("pipeline_errors"),
        "Frames that failed in pre-processing or inference.",
        labels=labels,
    )
    rate = GaugeMetricFamily(
        _name("pipeline_frames_per_second"),
        "Processed frames per second since the pipeline started.",
        labels=labels,
    )
    running = GaugeMetricFamily(
        _name("pipeline_running"), "1 while the pipeline's thread runs.", labels=labels
    )
    for pipeline in pipelines:
        stats = pipeline.stats()
        key = [str(stats["name"]), str(stats["model"])]
        frames_in.add_metric(key, float(stats["frames_in"]))
        processed.add_metric(key, float(stats["processed"]))
        dropped.add_metric(key, float(stats["dropped"]))
        errors.add_metric(key, float(stats["errors"]))
        rate.add_metric(key, float(stats["fps"]))
        running.add_metric(key, 1.0 if stats["running"] else 0.0)
    yield from (frames_in, processed, dropped, errors, rate, running)


def _drift(monitors: dict[str, Any]) -> Iterator[Metric]:
    labels = ["model", "signal"]
    severity = GaugeMetricFamily(
        _name("drift_severity"),
        "Drift severity of the last closed window, by signal (1 is the alarm threshold).",
        labels=labels,
    )
    alarm = GaugeMetricFamily(
        _name("drift_alarm"), "1 while the drift alarm of the signal is raised.", labels=labels
    )
    windows = CounterMetricFamily(
        _name("drift_windows"), "Windows of sampled inferences evaluated.", labels=["model"]
    )
    dropped = CounterMetricFamily(
        _name("drift_samples_dropped"),
        "Sampled inferences dropped because the drift worker was behind.",
        labels=["model"],
    )
    for model, monitor in sorted(monitors.items()):
        windows.add_metric([model], float(monitor.windows))
        dropped.add_metric([model], float(monitor.dropped))
        for signal, state in monitor.detector.alarms.items():
            alarm.add_metric([model, signal], 1.0 if state.level == "alarm" else 0.0)
        last = monitor.last_report
        if last is not None:
            for signal, score in last["signals"].items():
                severity.add_metric([model, signal], float(score["severity"]))
    yield from (severity, alarm, windows, dropped)


def _power(telemetry: _Telemetry) -> Iterator[Metric]:
    saving = GaugeMetricFamily(
        _name("power_saving"),
        "1 while the power policy saves power, by trigger (battery, thermal).",
        labels=["trigger"],
    )
    saving.add_metric(["battery"], 1.0 if telemetry.power.battery_saving else 0.0)
    saving.add_metric(["thermal"], 1.0 if telemetry.power.thermal_throttling else 0.0)
    yield saving
    snapshot = telemetry.last_snapshot
    if snapshot is None:
        return
    if snapshot.battery_pct is not None:
        yield GaugeMetricFamily(
            _name("battery_charge_ratio"),
            "Battery charge, 0 to 1.",
            value=snapshot.battery_pct / 100.0,
        )
    if snapshot.battery_charging is not None:
        yield GaugeMetricFamily(
            _name("battery_charging"),
            "1 while the battery charges or mains power is online.",
            value=1.0 if snapshot.battery_charging else 0.0,
        )
    if snapshot.power_w is not None:
        yield GaugeMetricFamily(
            _name("power_watts"), "Power drawn by the device.", value=snapshot.power_w
        )
    if telemetry.energy_per_inference_j is not None:
        yield GaugeMetricFamily(
            _name("energy_per_inference_joules"),
            "Energy per inference over the last report period (an upper bound: all power "
            "is attributed to inference).",
            value=telemetry.energy_per_inference_j,
        )
    if snapshot.thermal:
        temperature = GaugeMetricFamily(
            _name("temperature_celsius"), "Temperature by thermal zone.", labels=["zone"]
        )
        for zone in snapshot.thermal:
            temperature.add_metric([f"{zone.zone}:{zone.name}"], zone.temp_c)
        yield temperature


def _outbox(stats: dict[str, Any]) -> Iterator[Metric]:
    labels = ["priority"]
    queued = GaugeMetricFamily(
        _name("outbox_queued_records"), "Records waiting in the outbox.", labels=labels
    )
    dropped = CounterMetricFamily(
        _name("outbox_dropped_records"),
        "Records the full outbox dropped (lowest priority, oldest first).",
        labels=labels,
    )
    dropped_bytes = CounterMetricFamily(
        _name("outbox_dropped_bytes"), "Bytes of the records dropped.", labels=labels
    )
    for priority, counts in sorted(stats["queued"].items()):
        queued.add_metric([priority], float(counts["records"]))
    for priority, counts in sorted(stats["dropped"].items()):
        dropped.add_metric([priority], float(counts["records"]))
        dropped_bytes.add_metric([priority], float(counts["bytes"]))
    yield from (queued, dropped, dropped_bytes)
    yield GaugeMetricFamily(
        _name("outbox_queued_bytes"), "Payload bytes in the outbox.", value=stats["queued_bytes"]
    )
    yield GaugeMetricFamily(
        _name("outbox_capacity_bytes"), "The outbox's byte limit.", value=stats["max_bytes"]
    )


def _update_state(state: Any) -> Metric:
    family = GaugeMetricFamily(
        _name("update_state"),
        "1 for the state the model update state machine is in.",
        labels=["state"],
    )
    for member in type(state):
        family.add_metric([member.value], 1.0 if member is state else 0.0)
    return family


def _capture(stats: dict[str, Any]) -> Iterator[Metric]:
    captured = CounterMetricFamily(
        _name("capture_samples"),
        "Inputs and outputs captured, by model and strategy.",
        labels=["model", "strategy"],
    )
    for model, strategies in sorted(stats["models"].items()):
        for strategy, count in sorted(strategies.items()):
            captured.add_metric([model, strategy], float(count))
    yield captured
    yield CounterMetricFamily(
        _name("capture_dropped"),
        "Captures dropped because the writer queue was full.",
        value=stats["dropped_queue"],
    )
    yield CounterMetricFamily(
        _name("capture_write_errors"),
        "Captures that could not be written (for example, a full disk).",
        value=stats["write_errors"],
    )


def _uploads(stats: dict[str, Any]) -> Iterator[Metric]:
    yield CounterMetricFamily(
        _name("capture_uploaded_samples"),
        "Captured samples uploaded completely.",
        value=stats["samples_sent"],
    )
    yield CounterMetricFamily(
        _name("capture_uploaded_bytes"), "Bytes of samples uploaded.", value=stats["bytes_sent"]
    )
