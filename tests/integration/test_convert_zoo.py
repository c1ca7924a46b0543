"""The converter on models it did not make: third-party exports shipped inside PyPI packages.

Each zoo model (tests/fixtures/zoo.py: paddle2onnx, keras2onnx, tf2onnx and PyTorch exports at
opsets 11 to 17, open batch and spatial dims, NHWC inputs, several outputs) goes through `convert
auto` for a Raspberry Pi 5: static QDQ int8 (quantize, with the opset upgrade), ONNX float16, and
one onnx2tf run giving TFLite float16 and full-integer int8, each evaluated against the float
model on real images, the best packaged and verified. The recipe list is capped to keep CI within
budget (the PyTorch YOLOv8n to its two ONNX recipes: onnx2tf alone takes minutes on it); the full
list runs the same code. Set EDGE_AGENT_ZOO_REPORT=FILE to get the results table in Markdown
(docs/convert.md holds one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.errors import InputError
from edge_agent.manifest import verify_package
from tests.fixtures.zoo import UNSUPPORTED, ZOO, fetch, write_image_sets

pytest.importorskip("onnx2tf")
pytest.importorskip("skimage")

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
    pytest.mark.timeout(600),
]

RECIPES = "onnx_qdq_per_channel,onnx_fp16,tflite_fp16,tflite_full_int8"
SAMPLES = "32"
_RESULTS: list[dict[str, object]] = []


def run(*args):
    return CliRunner().invoke(cli, ["convert", *map(str, args)])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_image_sets(tmp_path_factory.mktemp("zoo-images"))


@pytest.fixture(scope="module", autouse=True)
def results_table():
    yield
    report = os.environ.get("EDGE_AGENT_ZOO_REPORT")
    if report and _RESULTS:
        lines = [
            "| model | exporter | opset | recipe chosen | size ratio | latency ratio | "
            "agreement | min cosine |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            "| {model} | {exporter} | {opset} | {recipe} | {size} | {latency} | {agreement} | "
            "{cosine} |".format(**row)
            for row in _RESULTS
        ]
        Path(report).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("zoo", ZOO, ids=[m.name for m in ZOO])
def test_convert_auto_packages_a_third_party_model(tmp_path, images, zoo):
    model = fetch(zoo)
    calibration, evaluation = images
    shape = ["--input-shape", zoo.input_shape] if zoo.input_shape else []
    recipes = zoo.recipes or RECIPES
    result = run(
        "auto",
        model,
        "--calibration",
        calibration,
        "--data",
        evaluation,
        "--target",
        "rpi5",
        *shape,
        "--recipes",
        recipes,
        "--max-calibration-samples",
        SAMPLES,
        "--max-samples",
        SAMPLES,
        "-o",
        tmp_path / "pkg",
        "--name",
        zoo.name.replace("_", "-"),
        "--version",
        "1.0.0",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["opset"] == zoo.opset
    rows = {row["recipe"]: row for row in report["rows"]}
    assert set(rows) == set(recipes.split(","))
    for row in rows.values():  # every recipe was built and measured, none failed to convert
        assert row["size_ratio"] is not None, f"{row['recipe']}: {row['reason']}"
    # int8 weights (opset < 13 too); a 28 KB model keeps more of its size in graph and scales
    bound = 0.6 if report["reference_bytes"] > 100_000 else 0.8
    assert rows["onnx_qdq_per_channel"]["size_ratio"] < bound
    if "tflite_full_int8" in rows:
        assert rows["tflite_full_int8"]["size_ratio"] < bound
    winner = rows[report["winner"]]
    assert winner["chosen"] and winner["passed"]
    manifest = verify_package(tmp_path / "pkg")
    assert manifest.target_devices == ["rpi5"] and manifest.evaluation is not None
    assert manifest.evaluation.passed and manifest.profile is not None
    cosine = min(winner["cosine_min"].values())
    _RESULTS.append(
        {
            "model": f"{zoo.name} ({zoo.task})",
            "exporter": zoo.exporter,
            "opset": zoo.opset,
            "recipe": report["winner"],
            "size": f"{winner['size_ratio']:.2f}",
            "latency": f"{winner['latency_ratio']:.2f}",
            "agreement": "-"
            if winner["top1_agreement"] is None
            else f"{winner['top1_agreement']:.3f}",
            "cosine": f"{cosine:.4f}",
        }
    )


def test_static_int8_of_an_opset_11_export_loads_and_evaluates(tmp_path, images):
    """Regression: per-channel QDQ of an opset 11/12 export made DequantizeLinear(axis) that
    onnxruntime refused to load; the graph is now converted to opset 13 first."""
    zoo = ZOO[0]
    assert zoo.opset == 11
    calibration, evaluation = images
    model, q = fetch(zoo), tmp_path / "q.onnx"
    result = run(
        "quantize",
        model,
        "-o",
        q,
        "--calibration",
        calibration,
        "--input-shape",
        zoo.input_shape,
        "--max-samples",
        SAMPLES,
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert any("opset 11 -> 13" in note for note in out["notes"])
    assert out["quantization"]["per_channel"] is True and out["size_ratio"] < 0.6
    result = run(
        "evaluate", q, "--reference", model, "--data", evaluation, "--max-samples", "16", "--json"
    )
    assert result.exit_code in (0, 1), result.output  # measured; the gates decide
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    report = json.loads(result.stdout)
    assert report["top1_agreement"] is not None and report["worst_layers"]


def test_open_spatial_dims_are_refused_with_what_to_give(tmp_path, images):
    calibration, evaluation = images
    result = run(
        "auto",
        fetch(ZOO[0]),
        "--calibration",
        calibration,
        "--data",
        evaluation,
        "--target",
        "rpi5",
    )
    assert isinstance(result.exception, InputError)
    assert "--input-shape" in str(result.exception) and "'?'" in str(result.exception)


def test_a_model_it_cannot_take_fails_saying_what_and_why(tmp_path, images):
    """silero VAD: audio of open length plus recurrent state inputs; no image data fits it."""
    calibration, evaluation = images
    result = run(
        "auto",
        fetch(UNSUPPORTED),
        "--calibration",
        calibration,
        "--data",
        evaluation,
        "--target",
        "rpi5",
    )
    assert isinstance(result.exception, InputError), result.output
    message = str(result.exception)
    assert "input" in message and "open dimensions" in message, message
