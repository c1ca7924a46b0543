"""What this device can run: runtimes, delegates and providers (really loaded), sensors.

``edge-agent doctor`` prints this as tables; ``--json`` as data for scripts and fleet inventory.
A delegate counts as *loadable* only when a tiny probe model actually runs on it.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.config import DeviceConfig, LiteRTDelegate, OnnxProvider, RuntimeSettings
from edge_agent.errors import EdgeAgentError
from edge_agent.runtime.delegates import LITERT_DEFAULT_LIBRARIES, ORT_PROVIDERS

PROBES = Path(__file__).resolve().parent.parent / "probes"
"""Tiny models (y = 2x + 1) used to check that a delegate really runs."""


@dataclass
class Check:
    """One row of the report: a runtime, delegate or provider and whether it works."""

    name: str
    status: str
    """``ok``, ``missing`` (not installed / not in this build) or ``failed`` (present, broken)."""
    detail: str = ""


@dataclass
class DoctorReport:
    """Everything ``doctor`` found."""

    edge_agent: str
    python: str
    platform: str
    device_class: str
    device_config: str
    runtimes: list[Check] = field(default_factory=list)
    litert_delegates: list[Check] = field(default_factory=list)
    onnx_providers: list[Check] = field(default_factory=list)
    sensors: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def diagnose(device: DeviceConfig, source: str) -> DoctorReport:
    """Probe this machine against ``device``'s preferences."""
    report = DoctorReport(
        edge_agent=__version__,
        python=sys.version.split()[0],
        platform=f"{platform.system()} {platform.release()} {platform.machine()}",
        device_class=device.device_class,
        device_config=source,
    )
    report.runtimes.append(_litert_runtime())
    report.runtimes.append(_onnx_runtime())
    report.litert_delegates = _litert_delegates(device) if report.runtimes[0].status == "ok" else []
    report.onnx_providers = _onnx_providers(device) if report.runtimes[1].status == "ok" else []
    report.sensors = _sensors(device)
    return report


def _litert_runtime() -> Check:
    from edge_agent.runtime.litert import find_runtime

    try:
        runtime = find_runtime()
    except EdgeAgentError as exc:
        return Check("LiteRT (.tflite)", "missing", str(exc))
    return Check("LiteRT (.tflite)", "ok", f"{runtime.module} {runtime.version}")


def _onnx_runtime() -> Check:
    from edge_agent.runtime.onnx import import_onnxruntime

    try:
        ort = import_onnxruntime()
    except EdgeAgentError as exc:
        return Check("ONNX Runtime (.onnx)", "missing", str(exc))
    return Check(
        "ONNX Runtime (.onnx)",
        "ok",
        f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})",
    )


def _litert_delegates(device: DeviceConfig) -> list[Check]:
    wanted = list(device.runtime.litert.delegates)
    for extra in (LiteRTDelegate(name=n) for n in ("xnnpack", "edgetpu", "gpu", "cpu")):
        if all(d.name != extra.name for d in wanted):
            wanted.append(extra)
    return [_probe_litert(delegate) for delegate in wanted]


def _probe_litert(delegate: LiteRTDelegate) -> Check:
    from edge_agent.runtime.litert import LiteRTBackend, library_problem

    label: str = delegate.name
    library = delegate.library or LITERT_DEFAULT_LIBRARIES.get(delegate.name, "")
    if library:
        label += f" ({library})"
    problem = library_problem(library) if library else None
    if problem:
        return Check(label, "missing", problem)
    settings = RuntimeSettings(on_delegate_failure="fail")
    settings.litert.delegates = [delegate]
    return _probe(label, lambda: LiteRTBackend(PROBES / "probe.tflite", settings))


def _onnx_providers(device: DeviceConfig) -> list[Check]:
    from edge_agent.runtime.onnx import OnnxBackend, import_onnxruntime

    available = import_onnxruntime().get_available_providers()
    preferred = [p.name for p in device.runtime.onnx.providers]
    names = preferred + [n for n in ORT_PROVIDERS if n not in preferred]
    checks = []
    for name in names:
        ort_name = ORT_PROVIDERS[name]
        if ort_name not in available:
            if name in preferred:
                checks.append(
                    Check(name, "missing", f"{ort_name} is not in this onnxruntime build")
                )
            continue
        options = next((p.options for p in device.runtime.onnx.providers if p.name == name), {})
        settings = RuntimeSettings(on_delegate_failure="fail")
        settings.onnx.providers = [OnnxProvider(name=name, options=options)]  # type: ignore[arg-type]
        checks.append(_probe(name, lambda s=settings: OnnxBackend(PROBES / "probe.onnx", s)))
    return checks


def _probe(label: str, load: Any) -> Check:
    try:
        backend = load()
    except Exception as exc:  # any failure of a delegate is a finding, not a crash
        return Check(label, "failed", _short(exc))
    try:
        placement = backend.delegate.node_placement
        detail = f"runs the probe model on {backend.delegate.name}"
        if placement:
            detail += " (" + ", ".join(f"{k}: {v} nodes" for k, v in placement.items()) + ")"
        return Check(label, "ok", detail)
    finally:
        backend.close()


def _sensors(device: DeviceConfig) -> dict[str, Any]:
    try:
        from edge_agent.telemetry.sensors import read_sensors
    except ImportError as exc:  # pragma: no cover - the telemetry package ships with the agent
        return {"error": f"sensor support missing: {exc}"}
    snapshot: dict[str, Any] = read_sensors(device.sensors).as_dict()
    return snapshot


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
