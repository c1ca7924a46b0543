"""`edge-agent doctor | infer | bench` as a user runs them (the installed console script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BIN = Path(sys.executable).parent / "edge-agent"


def edge_agent(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_doctor_finds_both_runtimes_and_runs_the_probe_on_cpu():
    report = json.loads(edge_agent("doctor", "--json").stdout)
    assert {c["name"]: c["status"] for c in report["runtimes"]} == {
        "LiteRT (.tflite)": "ok",
        "ONNX Runtime (.onnx)": "ok",
    }
    litert = {c["name"]: c for c in report["litert_delegates"]}
    assert litert["xnnpack"]["status"] == "ok"
    assert litert["edgetpu (libedgetpu.so.1)"]["status"] == "missing"
    onnx = {c["name"]: c for c in report["onnx_providers"]}
    assert onnx["cpu"]["status"] == "ok" and "cpu: 2 nodes" in onnx["cpu"]["detail"]
    assert isinstance(report["sensors"], dict)


def test_doctor_table_for_a_jetson_config_shows_missing_gpu_providers():
    result = edge_agent("doctor", "--device", "jetson-orin-nano")
    assert "tensorrt" in result.stdout and "missing" in result.stdout


@pytest.mark.parametrize("model", ["digits_int8.tflite", "digits_int8.onnx", "digits_fp32.onnx"])
def test_infer_on_an_image_names_the_digit(models_dir, model):
    result = edge_agent(
        "infer",
        str(models_dir / "digits" / model),
        "--input",
        str(models_dir / "digits" / "samples" / "digit_3_3.png"),
        "--json",
    )
    output = json.loads(result.stdout)
    (summary,) = output["outputs"].values()
    assert summary["top_k"][0]["label"] == "3"
    assert summary["top_k"][0]["score"] > 0.5


def test_infer_writes_raw_outputs_keyed_by_name(models_dir, tmp_path):
    sample = np.load(models_dir / "digits" / "test_set.npz")["x"][:1]
    np.save(tmp_path / "x.npy", sample)  # NHWC data for an NCHW model: transposed for you
    edge_agent(
        "infer",
        str(models_dir / "digits" / "digits_fp32.onnx"),
        "--input",
        str(tmp_path / "x.npy"),
        "--output",
        str(tmp_path / "out.npz"),
    )
    with np.load(tmp_path / "out.npz") as saved:
        assert saved.files == ["probabilities"]
        assert saved["probabilities"].shape == (1, 10)


def test_infer_raw_returns_stored_integers(models_dir):
    result = edge_agent(
        "infer",
        str(models_dir / "digits" / "digits_int8.tflite"),
        "--input",
        str(models_dir / "digits" / "samples" / "digit_7_1.png"),
        "--raw",
        "--json",
    )
    (summary,) = json.loads(result.stdout)["outputs"].values()
    assert summary["dtype"] == "int8"
    assert summary["top_k"][0]["label"] == "7"


def test_infer_on_a_bad_model_exits_2_with_the_reason(tmp_path, models_dir):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"garbage" * 10)
    result = edge_agent(
        "infer",
        str(bad),
        "--input",
        str(models_dir / "digits" / "samples" / "digit_3_3.png"),
        check=False,
    )
    assert result.returncode == 2
    assert "not a TFLite model" in result.stderr
    assert "Traceback" not in result.stderr


def test_infer_with_a_wrongly_shaped_input_exits_2(tmp_path, models_dir):
    np.save(tmp_path / "x.npy", np.zeros((3, 3), np.float32))
    result = edge_agent(
        "infer",
        str(models_dir / "digits" / "digits_fp32.tflite"),
        "--input",
        str(tmp_path / "x.npy"),
        check=False,
    )
    assert result.returncode == 2
    assert "expects shape [1, 8, 8, 1], got [3, 3]" in result.stderr


@pytest.mark.parametrize("model", ["digits32/digits32_int8.tflite", "digits32/digits32_fp32.onnx"])
def test_bench_reports_latency_throughput_memory_and_delegate(models_dir, model):
    result = json.loads(
        edge_agent(
            "bench", str(models_dir / model), "--runs", "30", "--warmup", "3", "--json"
        ).stdout
    )
    latency = result["latency_ms"]
    assert (
        0 < latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    )
    assert result["runs"] == 30 and result["throughput_per_s"] > 0
    assert result["peak_rss_mib"] >= result["rss_after_mib"] > 0
    assert result["delegate"] in ("xnnpack", "cpu")


def test_bench_with_a_forced_cpu_delegate(models_dir):
    result = json.loads(
        edge_agent(
            "bench",
            str(models_dir / "digits" / "digits_fp32.tflite"),
            "--runs",
            "5",
            "--delegate",
            "cpu",
            "--json",
        ).stdout
    )
    assert result["delegate"] == "cpu"


def test_strict_delegate_that_is_missing_fails_cleanly(models_dir):
    result = edge_agent(
        "bench",
        str(models_dir / "digits" / "digits_fp32.onnx"),
        "--runs",
        "5",
        "--delegate",
        "cuda",
        "--strict",
        check=False,
    )
    assert result.returncode == 2
    assert "'cuda' is not available" in result.stderr


def test_help_explains_every_command():
    for command in ("doctor", "infer", "bench", "config"):
        result = edge_agent(command, "--help")
        assert "Usage:" in result.stdout and len(result.stdout) > 200
