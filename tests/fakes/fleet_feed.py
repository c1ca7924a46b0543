"""Simulated device reports in the agents' exact wire formats, built with the agents' own code.

The documents are the wire contract's classes (:mod:`edge_agent.wire`) filled by the real
producers (``LatencyRecorder.collect``, ``Record.envelope``, ``DriftDetector`` window reports),
so a change of format on the agent side breaks the monitor's tests instead of silently
diverging.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from edge_agent.config import DriftSettings
from edge_agent.telemetry.drift import DriftDetector
from edge_agent.telemetry.latency import LatencyRecorder
from edge_agent.telemetry.outbox import Priority, Record
from edge_agent.telemetry.profile import Profile, build_profile
from edge_agent.transport.topics import DeviceChannel
from edge_agent.wire import Document
from edge_agent.wire.chunks import SampleChunkHeader, encode_sample_chunk
from edge_agent.wire.drift import DriftAlarmEvent, DriftReport
from edge_agent.wire.states import DeviceState, SwapState
from edge_agent.wire.status import ModelStatus, Status
from edge_agent.wire.telemetry import Load, System, TelemetryReport
from edge_agent.wire.transitions import SwapEvent


def status(
    device: str,
    state: str = "online",
    models: list[tuple[str, ...]] | None = None,
    when: float | None = None,
) -> bytes:
    """``Agent.status()``: retained status document; ``models`` are (name, version, delegate)
    or (name, version, delegate, variant)."""
    return Status(
        device_id=device,
        state=DeviceState(state),
        agent_version="0.1.0",
        device_class="x86-generic",
        models=[
            ModelStatus(name=m[0], version=m[1], delegate=m[2], variant=m[3] if m[3:] else None)
            for m in (models or [("digits", "1", "cpu")])
        ],
        api="127.0.0.1:8080",
        uptime_s=12.5,
        time=time.time() if when is None else when,
    ).encode()


def last_will(device: str) -> bytes:
    """The broker-published last will."""
    return Status.last_will(device).encode()


class Clock:
    """A settable monotonic clock for LatencyRecorder."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def telemetry(
    device: str,
    seq: int,
    *,
    outbox: str = "ob1",
    latencies_ms: list[float] | None = None,
    errors: int = 0,
    battery_pct: float | None = 80.0,
    temp_c: float | None = 50.0,
    power_w: float | None = 4.0,
    model: str = "digits",
    version: str = "1",
    created: float | None = None,
) -> bytes:
    """One telemetry envelope (``AgentTelemetry.report`` inside ``Record.envelope``)."""
    clock = Clock()
    recorder = LatencyRecorder(clock=clock)
    for ms in latencies_ms if latencies_ms is not None else [5.0, 6.0, 7.0, 20.0]:
        recorder.record(model, "cpu", ms / 1000.0)
    for _ in range(errors):
        recorder.record(model, "cpu", 0.0, ok=False)
    clock.now = 1.0
    report = TelemetryReport(
        device_id=device,
        state="online",
        models=[ModelStatus(name=model, version=version, delegate="cpu")],
        load=Load.model_validate(recorder.collect()),
        system=System.model_validate(
            {
                "timestamp": time.time(),
                "cpu_usage_pct": 12.0,
                "memory_used_pct": 40.0,
                "power_w": power_w,
                "battery_pct": battery_pct,
                "max_temp_c": temp_c,
                "thermal": [],
                "power_supplies": [],
            }
        ),
        energy_per_inference_j=0.01,
        power_mode="normal",
        outbox={"queued_bytes": 0},
    )
    return envelope(seq, outbox, DeviceChannel.TELEMETRY, report, created)


def envelope(
    seq: int,
    outbox: str,
    channel: DeviceChannel,
    data: Document | dict[str, Any],
    created: float | None = None,
) -> bytes:
    """``Record.envelope`` of ``data`` (a wire document, or a raw object for hostile tests)."""
    priority = Priority.DRIFT if channel == DeviceChannel.DRIFT else Priority.TELEMETRY
    record = Record(
        seq,
        f"{outbox}-{seq}",
        priority,
        channel,
        time.time() if created is None else created,
        data.encode() if isinstance(data, Document) else json.dumps(data).encode(),
    )
    return record.envelope()


_REFERENCE: Profile | None = None


def reference() -> Profile:
    """A tabular reference profile (4 features, standard normal)."""
    global _REFERENCE
    if _REFERENCE is None:
        rng = np.random.default_rng(0)
        _REFERENCE = build_profile(rng.normal(size=(2000, 4)).astype(np.float32), None)
    return _REFERENCE


def drift_reports(model: str, shift: float, windows: int = 3) -> list[dict[str, Any]]:
    """Drift window reports of a real DriftDetector; ``shift`` moves feature f0 (0: no drift)."""
    settings = DriftSettings()
    detector = DriftDetector(reference(), settings)
    rng = np.random.default_rng(1)
    reports = []
    for index in range(windows):
        x = rng.normal(size=(300, 4)).astype(np.float32)
        x[:, 0] += shift
        window = build_profile(x, None, reference=reference())
        result = detector.evaluate(window)
        reports.append(result.report(model, index, 0))
    return reports


def drift_messages(model: str, shift: float, first_seq: int = 100) -> list[bytes]:
    """Envelopes like ``AgentTelemetry._drift_report``: each window, then its alarm events."""
    out = []
    seq = first_seq
    for raw in drift_reports(model, shift):
        report = DriftReport.model_validate(raw)
        out.append(envelope(seq, "ob1", DeviceChannel.DRIFT, report))
        seq += 1
        for t in report.transitions:
            event = DriftAlarmEvent.of(model, t)
            out.append(envelope(seq, "ob1", DeviceChannel.DRIFT, event))
            seq += 1
    return out


def rollout(model: str, version: str, state: str, reason: str, **evidence: Any) -> bytes:
    """A swap event (``SwapController._emit``)."""
    return SwapEvent(
        model=model,
        version=version,
        state=SwapState(state),
        reason=reason,
        time=time.time(),
        evidence=evidence or None,
    ).encode()


def sample_chunks(
    sample_id: str, model: str = "digits", size: int = 300, chunk: int = 128
) -> list[bytes]:
    """A sample upload, chunked like ``SampleUploader``."""
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    meta = {
        "created": time.time(),
        "model": model,
        "version": "1",
        "delegate": "cpu",
        "latency_s": 0.004,
        "strategy": "low_confidence",
        "prediction": 7,
        "confidence": 0.42,
        "meta": {},
        "format": "npz",
    }
    out = []
    for offset in range(0, size, chunk):
        header = SampleChunkHeader(
            id=sample_id,
            offset=offset,
            size=size,
            sha256=digest,
            meta=meta if offset == 0 else None,
        )
        out.append(encode_sample_chunk(header, data[offset : offset + chunk]))
    return out
