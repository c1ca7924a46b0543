"""`convert auto`'s pure decisions: which recipes a device class runs, which candidate wins."""

from __future__ import annotations

import pytest

from edge_agent.convert.selection import (
    RECIPES,
    TARGETS,
    Budget,
    Measured,
    choose,
    recipes_for,
)
from edge_agent.errors import InputError


def cand(name, size, latency, failed=(), error=None):
    return Measured(
        name, error=error, size_ratio=size, latency_ratio=latency, failed_gates=list(failed)
    )


def test_smallest_within_latency_budget_wins_and_every_loser_has_a_reason():
    measured = [
        cand("onnx_fp16", 0.5, 1.0),
        cand("onnx_qdq_per_channel", 0.26, 3.1),  # smallest, but too slow
        cand("tflite_full_int8", 0.27, 0.9, failed=["top1_agreement=0.93 (threshold 0.99)"]),
        cand("tflite_dynamic", 0.3, 0.95),
        cand("tflite_fp16", None, None, error="not built: onnx2tf could not convert the model"),
    ]
    winner, verdicts = choose(measured, Budget(max_latency_ratio=1.25))
    assert winner == "tflite_dynamic"
    why = {v.name: v.reason for v in verdicts}
    assert [v.name for v in verdicts if v.chosen] == ["tflite_dynamic"]
    assert "over the latency budget" in why["onnx_qdq_per_channel"]
    assert "top1_agreement" in why["tflite_full_int8"]
    assert why["tflite_fp16"].startswith("not built: onnx2tf")
    assert "larger than tflite_dynamic" in why["onnx_fp16"]


def test_fastest_within_size_budget():
    measured = [cand("a", 0.9, 0.5), cand("b", 0.3, 0.8), cand("c", 0.25, 1.4)]
    winner, verdicts = choose(
        measured, Budget(objective="fastest", max_latency_ratio=None, max_size_ratio=0.5)
    )
    assert winner == "b"
    why = {v.name: v.reason for v in verdicts}
    assert "over the size budget" in why["a"] and "slower than b" in why["c"]


def test_no_winner_when_nothing_passes():
    winner, verdicts = choose([cand("a", 0.3, 1.0, failed=["min_cosine=0.5"])], Budget())
    assert winner is None and not verdicts[0].chosen


def test_edge_tpu_runs_only_full_integer_tflite():
    tried, skipped = recipes_for("rpi5-coral")
    assert tried == ["tflite_full_int8"]
    assert set(skipped) == set(RECIPES) - {"tflite_full_int8"}


def test_tensorrt_targets_skip_dynamic_quantization():
    tried, skipped = recipes_for("jetson-orin-nano")
    assert "onnx_dynamic_int8" in skipped and "onnx_qdq_per_channel" in tried


def test_recipe_list_is_filtered_by_target_and_checked():
    tried, skipped = recipes_for("rpi5-coral", ("onnx_fp16", "tflite_full_int8"))
    assert tried == ["tflite_full_int8"] and skipped == ["onnx_fp16"]
    with pytest.raises(InputError, match="unknown nope"):
        recipes_for("rpi5", ("nope",))
    with pytest.raises(InputError, match="known: rpi4"):
        recipes_for("toaster")


def test_every_device_config_has_a_target(models_dir):
    configs = {p.stem for p in (models_dir.parent / "device_configs").glob("*.yaml")}
    assert configs == set(TARGETS)


def test_cli_auto_refuses_unknown_target_and_package_without_name(models_dir):
    from click.testing import CliRunner

    from edge_agent.cli import cli

    digits = models_dir / "digits"
    base = ["convert", "auto", str(digits / "digits_fp32.onnx")]
    data = ["--calibration", str(digits / "test_set.npz"), "--data", str(digits / "test_set.npz")]
    result = CliRunner().invoke(cli, [*base, *data, "--target", "toaster"])
    assert isinstance(result.exception, InputError) and "known: rpi4" in str(result.exception)
    result = CliRunner().invoke(cli, [*base, *data, "--target", "rpi5", "-o", "/tmp/x"])
    assert isinstance(result.exception, InputError) and "--name" in str(result.exception)
