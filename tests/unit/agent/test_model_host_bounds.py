"""An agent that hot-swaps for years keeps a bounded amount of state per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.agent.models import ModelHost
from edge_agent.config import RuntimeSettings, ServingSettings
from edge_agent.config.agent_schema import ModelEntry
from edge_agent.serving.metrics import VERSIONS_KEPT

DIGITS = Path(__file__).resolve().parents[3] / "models" / "digits"


def test_hot_swaps_keep_drift_references_and_request_series_bounded():
    """Regression (issue 12, item 7): every activated version added its drift reference to
    ``ModelHost._references`` and its request counters to ``/metrics`` for the agent's life
    (a release a week is 50 profiles and 100 series a year, per model)."""
    serving = ServingSettings.model_validate(
        {
            "gates": {
                "shadow_seconds": 0,
                "min_samples": 1,
                "watch_seconds": 0,
                "max_latency_ratio": 1000,
            }
        }
    )
    host = ModelHost(
        RuntimeSettings(threads=1), serving, on_served=lambda _s: None, on_event=lambda _e: None
    )
    host.add(ModelEntry(name="digits", path=DIGITS / "digits_fp32.onnx"))
    served = host.models.get("digits")
    assert served is not None
    x = np.load(DIGITS / "test_set.npz")["x"].transpose(0, 3, 1, 2)[:1].copy()
    try:
        for version in range(2, 14):
            for _ in range(16):  # traffic for the shadow check to compare
                served.run({"input": x})
            model = "digits_int8.onnx" if version % 2 else "digits_fp32.onnx"
            assert host.swap_in("digits", str(version), DIGITS / model)
        assert served.active.version == "13"
        served.run({"input": x})
        assert set(host._references["digits"]) == {"12", "13"}  # active, and the rollback's
        text = host.metrics.exposition().decode()
        versions = {
            line.split('version="')[1].split('"')[0]
            for line in text.splitlines()
            if line.startswith("edge_agent_inferences_total{")
        }
        assert len(versions) <= VERSIONS_KEPT and "13" in versions
    finally:
        for model in host.models:
            model.active.drain_and_close()


def test_swap_events_kept_in_memory_are_bounded():
    """Issue 12, item 7: the daemon's event list (what the demo and status read) is capped."""
    from edge_agent.agent.models import MAX_EVENTS
    from edge_agent.wire.states import SwapState

    seen: list[object] = []
    host = ModelHost(
        RuntimeSettings(threads=1),
        ServingSettings(),
        on_served=lambda _s: None,
        on_event=seen.append,
    )
    for i in range(MAX_EVENTS + 50):
        host._swap_event(
            {"model": "digits", "version": "2", "state": SwapState.SHADOW, "reason": str(i)}
        )
    assert len(host.events) == MAX_EVENTS
    assert host.events[-1]["reason"] == str(MAX_EVENTS + 49)
    assert len(seen) == MAX_EVENTS + 50  # every event was still reported
