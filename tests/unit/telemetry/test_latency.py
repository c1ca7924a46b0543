from __future__ import annotations

import json

import pytest

from edge_agent.telemetry.latency import (
    LatencyRecorder,
    energy_per_inference_j,
    sketch_from_dict,
)


def test_collect_reports_percentiles_throughput_errors_and_load() -> None:
    now = [100.0]
    rec = LatencyRecorder(relative_accuracy=0.01, clock=lambda: now[0])
    for i in range(1, 1001):
        rec.record("digits", "xnnpack", i / 1e6)  # 1 us .. 1 ms
    rec.record("digits", "xnnpack", 0.0, ok=False)
    rec.record("other", "cpu", 0.002)
    rec.frame_dropped("digits", "xnnpack", 3)
    rec.queue_depth("digits", "xnnpack", 7)
    rec.queue_depth("digits", "xnnpack", 2)
    now[0] = 110.0
    report = json.loads(json.dumps(rec.collect()))
    assert report["period_s"] == 10.0
    digits = next(m for m in report["models"] if m["model"] == "digits")
    assert digits["count"] == 1000 and digits["errors"] == 1
    assert digits["throughput_per_s"] == 100.0
    assert digits["dropped_frames"] == 3
    assert digits["queue_depth"] == 2 and digits["max_queue_depth"] == 7
    assert digits["latency_ms"]["p50"] == pytest.approx(0.5, rel=0.02)
    assert digits["latency_ms"]["p99"] == pytest.approx(0.99, rel=0.02)
    assert rec.collect()["models"] == []  # the period was reset


def test_sketches_from_two_devices_merge_exactly() -> None:
    a, b = LatencyRecorder(), LatencyRecorder()
    for i in range(1, 501):
        a.record("m", "cpu", i / 1000)
        b.record("m", "cpu", (500 + i) / 1000)
    sa = sketch_from_dict(json.loads(json.dumps(a.collect()["models"][0]["sketch"])))
    sb = sketch_from_dict(json.loads(json.dumps(b.collect()["models"][0]["sketch"])))
    sa.merge(sb)
    assert sa.count == 1000
    assert sa.get_quantile_value(0.5) == pytest.approx(0.5, rel=0.02)
    assert sa.get_quantile_value(0.99) == pytest.approx(0.99, rel=0.02)
    assert sa.sum == pytest.approx(sum(i / 1000 for i in range(1, 1001)))


def test_malformed_sketch_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="malformed latency sketch"):
        sketch_from_dict({"relative_accuracy": 0.01, "bins": {"x": 1}})


def test_energy_per_inference() -> None:
    assert energy_per_inference_j(5.0, 1000, 10.0) == pytest.approx(0.05)
    assert energy_per_inference_j(None, 1000, 10.0) is None
    assert energy_per_inference_j(5.0, 0, 10.0) is None
