"""The agent's retained status document: what it serves, on which delegate, and how it fares.

Built from plain data (as the wire contract's :class:`~edge_agent.wire.status.Status`) so it
can be tested without a running agent; the agent publishes it on
its `status` topic (retained) and hands it to telemetry with each report.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from edge_agent import __version__
from edge_agent.serving import ServedModel
from edge_agent.wire.states import DeviceState
from edge_agent.wire.status import ModelStatus, Status


def model_status(served: ServedModel) -> ModelStatus:
    """One served model's entry: its active version, delegate, and whether it degraded."""
    backend = served.active.backend
    model_file = (served.active.manifest or {}).get("model", {}).get("path")
    return ModelStatus(
        name=served.name,
        version=served.active.version,
        delegate=backend.delegate.name,
        degraded=bool(getattr(backend, "degraded", False)),
        variant=str(model_file).rsplit("/", 1)[-1] if model_file else None,
    )


def status_document(
    *,
    device_id: str,
    device_class: str,
    models: Iterable[ServedModel],
    api_address: str,
    started_at: float,
    pipelines: Sequence[dict[str, Any]],
    healthy: bool,
    state: DeviceState | None = None,
    restart_needed: Sequence[str] = (),
) -> Status:
    """The status document; ``state`` defaults to `degraded` or `online` from the models.

    ``restart_needed`` names the config sections a reload changed that only a restart applies.
    """
    entries = [model_status(served) for served in models]
    if state is None:
        degraded = any(entry.degraded for entry in entries)
        state = DeviceState.DEGRADED if degraded or not healthy else DeviceState.ONLINE
    return Status(
        device_id=device_id,
        state=state,
        agent_version=__version__,
        device_class=device_class,
        models=entries,
        api=api_address,
        uptime_s=round(time.time() - started_at, 1),
        pipelines=list(pipelines),
        restart_needed=list(restart_needed),
        time=time.time(),
    )
