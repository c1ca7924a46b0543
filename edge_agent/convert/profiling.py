"""`convert profile`: the drift reference profile of a model on sample data.

The format and the statistics belong to ``edge_agent.telemetry.profile`` (the device builds its
window profiles with the same code, so reference and windows are comparable); this module only
feeds it: it loads the samples, runs the model through the device runtime to get the output
distribution, and writes the profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from edge_agent.config import RuntimeSettings
from edge_agent.convert.calibration import DataSource, feeds_for
from edge_agent.convert.inspect_model import layout_of
from edge_agent.convert.progress import steps
from edge_agent.manifest import sha256_file
from edge_agent.runtime import load_model
from edge_agent.telemetry.profile import DEFAULT_BINS, Layout, build_profile, save_profile


def profile_model(
    model: Path,
    data: DataSource,
    output: Path,
    *,
    labels: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    console: Console | None = None,
) -> dict[str, Any]:
    """Profile ``model``'s first input and first output on ``data``; returns a short summary."""
    backend = load_model(model, RuntimeSettings())
    try:
        samples = data.load(backend.inputs)
        feeds = feeds_for(samples, backend.inputs)
        first_in, first_out = backend.inputs[0], backend.outputs[0]
        rows = []
        with steps(
            f"running the model on {samples.count} samples", samples.count, console
        ) as advance:
            for index in range(samples.count):
                outputs = backend.run({k: v[index : index + 1] for k, v in feeds.items()})
                rows.append(np.asarray(outputs[first_out.name], dtype=np.float32))
                advance(1)
    finally:
        backend.close()
    layouts: dict[str, Layout] = {"NHWC": "nhwc", "NCHW": "nchw"}
    layout: Layout = layouts.get(layout_of(first_in) or "", "auto")
    built = build_profile(
        feeds[first_in.name],
        np.concatenate(rows).reshape(samples.count, -1),
        layout=layout,
        bins=bins,
        labels=list(labels) if labels else None,
        meta={
            "model": model.name,
            "model_sha256": sha256_file(model),
            "data": Path(samples.source).name,
            "input": first_in.name,
            "output": first_out.name,
        },
    )
    save_profile(built, output)
    return {
        "output": str(output),
        "bytes": output.stat().st_size,
        "samples": built.samples,
        "features": len(built.features),
        "layout": built.layout,
    }
