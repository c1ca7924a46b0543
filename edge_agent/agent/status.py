"""The agent's retained status document: what it serves, on which delegate, and how it fares.

Built from plain data so it can be tested without a running agent; the agent publishes it on
its `status` topic (retained) and hands it to telemetry with each report.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from edge_agent import __version__
from edge_agent.serving import ServedModel


def model_status(served: ServedModel) -> dict[str, Any]:
    """One served model's entry: its active version, delegate, and whether it degraded."""
    backend = served.active.backend
    return {
        "name": served.name,
        "version": served.active.version,
        "delegate": backend.delegate.name,
        "degraded": bool(getattr(backend, "degraded", False)),
    }


def status_document(
    *,
    device_id: str,
    device_class: str,
    models: Iterable[ServedModel],
    api_address: str,
    started_at: float,
    pipelines: Sequence[dict[str, Any]],
    healthy: bool,
    state: str | None = None,
) -> dict[str, Any]:
    """The status document; ``state`` defaults to `degraded` or `online` from the models."""
    entries = [model_status(served) for served in models]
    if state is None:
        degraded = any(entry["degraded"] for entry in entries)
        state = "degraded" if degraded or not healthy else "online"
    return {
        "device_id": device_id,
        "state": state,
        "agent_version": __version__,
        "device_class": device_class,
        "models": entries,
        "api": api_address,
        "uptime_s": round(time.time() - started_at, 1),
        "pipelines": list(pipelines),
        "time": time.time(),
    }
