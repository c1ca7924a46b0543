"""Loading a model version for serving, inline or in a supervised worker process."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from edge_agent.config import BatchingSettings, RuntimeSettings
from edge_agent.runtime import Backend, load_model
from edge_agent.runtime.delegates import LITERT_DEFAULT_LIBRARIES
from edge_agent.serving.served import LoadedVersion

log = logging.getLogger(__name__)
Isolation = Literal["auto", "process", "inline"]
_CPU_ONLY = {"xnnpack", "cpu"}


def needs_isolation(settings: RuntimeSettings, path: Path, isolation: Isolation) -> bool:
    """Whether to run inference in a worker process.

    ``auto``: isolate when an accelerator delegate (a native library that may crash) is
    preferred for this format; CPU-only plans run inline, where a crash is unlikely and the
    pipe round trip would be pure cost.
    """
    if isolation != "auto":
        return isolation == "process"
    if path.suffix.lower() == ".tflite":
        names = {d.name for d in settings.litert.delegates}
        return bool(names - _CPU_ONLY) or bool(names & set(LITERT_DEFAULT_LIBRARIES))
    return bool({p.name for p in settings.onnx.providers} - _CPU_ONLY)


def load_version(
    name: str,
    version: str,
    path: Path,
    settings: RuntimeSettings,
    *,
    isolation: Isolation = "auto",
    manifest: Mapping[str, Any] | None = None,
    batching: BatchingSettings | None = None,
) -> LoadedVersion:
    """Load ``path`` as version ``version`` of model ``name``.

    With ``batching``, a model whose inputs all have an open batch dimension is wrapped in a
    BatchingBackend; any other model is served unbatched (logged once, at load).
    """
    backend: Backend
    if needs_isolation(settings, path, isolation):
        from edge_agent.serving.isolation import IsolatedBackend  # multiprocessing: when used

        backend = IsolatedBackend(path, settings)
    else:
        backend = load_model(path, settings)
    if batching is not None:
        from edge_agent.serving.batching import BatchingBackend, batchable

        if batchable(backend.inputs):
            backend = BatchingBackend(
                backend, batching.max_batch_size, batching.max_queue_delay_ms / 1000
            )
        else:
            log.info("%s: inputs have no open batch dimension; served unbatched", name)
    return LoadedVersion(name, str(version), backend, path, dict(manifest or {}))
