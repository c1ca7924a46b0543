"""`edge-agent convert` on the real sample models with onnxruntime (runs in the device venv).

The whole user flow, quantize -> evaluate -> profile -> package, and the case it exists for: a
broken int8 calibration that the gates must catch and `package` must refuse.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.errors import InputError, ModelError
from edge_agent.manifest import MANIFEST_FILENAME, load_manifest, verify_package

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")


@pytest.fixture
def digits(models_dir):
    d = models_dir / "digits"
    return {
        "fp32": d / "digits_fp32.onnx",
        "data": d / "test_set.npz",
        "tflite_int8": d / "digits_int8.tflite",
        "labels": d / "labels.txt",
    }


def run(*args):
    return CliRunner().invoke(cli, ["convert", *map(str, args)])


def test_quantize_evaluate_profile_package(tmp_path, digits):
    q = tmp_path / "digits_int8.onnx"
    result = run("quantize", digits["fp32"], "-o", q, "--calibration", digits["data"], "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["quantization"]["scheme"] == "static" and out["size_ratio"] < 0.5
    assert out["quantization"]["calibration"]["samples"] == 360

    ev = tmp_path / "eval.json"
    result = run(
        "evaluate",
        q,
        "--reference",
        digits["fp32"],
        "--data",
        digits["data"],
        "-o",
        ev,
        "--max-size-ratio",
        "0.5",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(ev.read_text())
    assert report["passed"] and report["top1_agreement"] >= 0.99
    assert report["accuracy"] >= 0.98 and report["accuracy_drop"] <= 0.01
    assert report["outputs"][0]["cosine_min"] > 0.99
    assert report["worst_layers"], "a QDQ candidate against its float model lists its layers"

    profile = tmp_path / "profile.json"
    assert (
        run(
            "profile", q, "--data", digits["data"], "-o", profile, "--class-names", digits["labels"]
        ).exit_code
        == 0
    )

    pkg = tmp_path / "pkg"
    result = run(
        "package",
        q,
        "--name",
        "digits",
        "--version",
        "1.0.0",
        "-o",
        pkg,
        "--profile",
        profile,
        "--eval",
        ev,
        "--labels",
        digits["labels"],
        "--target",
        "rpi4",
        "--scale",
        "0.0625",
    )
    assert result.exit_code == 0, result.output
    manifest = verify_package(pkg)
    assert manifest.format == "onnx" and manifest.quantization.scheme == "static"
    assert manifest.quantization.calibration.samples == 360
    assert manifest.inputs[0].layout == "NCHW" and manifest.labels[3] == "3"
    assert manifest.evaluation.passed and not manifest.evaluation.forced
    assert manifest.profile is not None and manifest.target_devices == ["rpi4"]
    assert manifest.preprocessing.kind == "image" and manifest.preprocessing.scale == 0.0625
    assert sorted(p.name for p in pkg.iterdir()) == sorted(
        [MANIFEST_FILENAME, "digits_int8.onnx", "evaluation.json", "profile.json"]
    )


def test_gates_catch_int8_calibrated_on_constant_data(tmp_path, digits):
    """A real broken quantization: activation ranges calibrated on blank frames."""
    blank = tmp_path / "blank.npy"
    np.save(blank, np.zeros((64, 8, 8, 1), np.float32))
    bad = tmp_path / "bad_int8.onnx"
    assert run("quantize", digits["fp32"], "-o", bad, "--calibration", blank).exit_code == 0

    ev = tmp_path / "eval.json"
    result = run("evaluate", bad, "--reference", digits["fp32"], "--data", digits["data"], "-o", ev)
    assert result.exit_code == 1, result.output
    report = json.loads(ev.read_text())
    failed = {g["name"] for g in report["gates"] if not g["passed"]}
    assert failed == {"top1_agreement", "accuracy_drop"}
    assert report["accuracy_drop"] > 0.1

    result = run(
        "package",
        bad,
        "--name",
        "digits",
        "--version",
        "1.0.1",
        "-o",
        tmp_path / "pkg",
        "--eval",
        ev,
    )
    assert isinstance(result.exception, ModelError)
    assert "gates failed" in str(result.exception)
    assert not (tmp_path / "pkg").exists()

    result = run(
        "package",
        bad,
        "--name",
        "digits",
        "--version",
        "1.0.1",
        "-o",
        tmp_path / "forced",
        "--eval",
        ev,
        "--force",
    )
    assert result.exit_code == 0, result.output
    manifest = load_manifest(tmp_path / "forced" / MANIFEST_FILENAME)
    assert manifest.evaluation.forced and not manifest.evaluation.passed


def test_package_refuses_evaluation_of_another_file(tmp_path, digits):
    ev = tmp_path / "eval.json"
    assert (
        run(
            "evaluate",
            digits["tflite_int8"],
            "--reference",
            digits["fp32"],
            "--data",
            digits["data"],
            "-o",
            ev,
            "--no-layers",
        ).exit_code
        == 0
    )
    result = run(
        "package",
        digits["fp32"],
        "--name",
        "digits",
        "--version",
        "1",
        "-o",
        tmp_path / "pkg",
        "--eval",
        ev,
    )
    assert isinstance(result.exception, ModelError)
    assert "evaluate this very file" in str(result.exception)


def test_cross_format_evaluation_tflite_against_onnx(tmp_path, digits):
    result = run(
        "evaluate",
        digits["tflite_int8"],
        "--reference",
        digits["fp32"],
        "--data",
        digits["data"],
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["candidate"]["format"] == "tflite" and report["reference"]["format"] == "onnx"
    assert report["top1_agreement"] >= 0.99 and report["size_ratio"] < 0.4
    assert "ONNX QDQ" in report["worst_layers_note"]


def test_dynamic_quantization_of_the_mobilenet(tmp_path, models_dir):
    q = tmp_path / "d32_dyn.onnx"
    result = run(
        "quantize",
        models_dir / "digits32" / "digits32_fp32.onnx",
        "-o",
        q,
        "--mode",
        "dynamic",
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["quantization"]["activations"] == "dynamic"
    assert out["op_counts"].get("ConvInteger", 0) > 0 and out["size_ratio"] < 0.5


def test_bad_input_errors(tmp_path, digits, models_dir):
    out = tmp_path / "x.onnx"
    result = run("quantize", digits["fp32"], "-o", out)
    assert isinstance(result.exception, InputError) and "--calibration" in str(result.exception)

    np.save(tmp_path / "few.npy", np.zeros((5, 8, 8, 1), np.float32))
    result = run("quantize", digits["fp32"], "-o", out, "--calibration", tmp_path / "few.npy")
    assert isinstance(result.exception, InputError) and "only 5" in str(result.exception)

    np.save(tmp_path / "big.npy", np.zeros((20, 32, 32, 3), np.float32))
    result = run("quantize", digits["fp32"], "-o", out, "--calibration", tmp_path / "big.npy")
    assert isinstance(result.exception, InputError) and "do not fit" in str(result.exception)

    result = run(
        "quantize", models_dir / "digits" / "digits_int8.onnx", "-o", out, "--mode", "dynamic"
    )
    assert isinstance(result.exception, ModelError) and "already quantized" in str(result.exception)

    result = run(
        "quantize",
        digits["fp32"],
        "-o",
        out,
        "--mode",
        "dynamic",
        "--exclude-nodes",
        "no_such_node",
    )
    assert isinstance(result.exception, InputError) and "no node named" in str(result.exception)

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07garbage" * 10)
    result = run("quantize", garbage, "-o", out, "--mode", "dynamic")
    assert isinstance(result.exception, ModelError)
    assert not out.exists()
