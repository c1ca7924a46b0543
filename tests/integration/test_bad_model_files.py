"""Bad model files get a ModelError naming the file and the cause, never a crash."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.errors import ModelError
from edge_agent.runtime import load_model

FORMATS = ["digits_fp32.tflite", "digits_fp32.onnx"]


@pytest.fixture(params=FORMATS)
def good_model(request, models_dir: Path) -> Path:
    return models_dir / "digits" / request.param


def expect_model_error(path: Path, *fragments: str) -> None:
    with pytest.raises(ModelError) as caught:
        load_model(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_empty_file(tmp_path, good_model):
    path = tmp_path / good_model.name
    path.write_bytes(b"")
    expect_model_error(path, "the file is empty")


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.95])
def test_truncated_file(tmp_path, good_model, fraction):
    data = good_model.read_bytes()
    path = tmp_path / good_model.name
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelError) as caught:
        load_model(path)
    assert str(path) in str(caught.value)


def test_text_file_with_a_model_extension(tmp_path, good_model):
    path = tmp_path / good_model.name
    path.write_text("this is not a model\n" * 10)
    with pytest.raises(ModelError) as caught:
        load_model(path)
    assert str(path) in str(caught.value)


def test_tflite_model_named_onnx_is_recognised(tmp_path, models_dir):
    path = tmp_path / "model.onnx"
    path.write_bytes((models_dir / "digits" / "digits_fp32.tflite").read_bytes())
    expect_model_error(path, "TFLite model named .onnx")


def test_onnx_model_named_tflite_is_recognised(tmp_path, models_dir):
    path = tmp_path / "model.tflite"
    path.write_bytes((models_dir / "digits" / "digits_fp32.onnx").read_bytes())
    expect_model_error(path, "not a TFLite model")


@pytest.mark.parametrize("suffix", [".pb", ".h5", ".pt", ""])
def test_unsupported_extension_names_the_supported_ones(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match=r"unsupported model format.*\.tflite, \.onnx"):
        load_model(path)


def test_missing_file(tmp_path):
    expect_model_error(tmp_path / "nope.tflite", "no such model file")


def test_a_directory_is_not_a_model(tmp_path):
    path = tmp_path / "model.onnx"
    path.mkdir()
    expect_model_error(path, "not a regular file")


def test_unreadable_file(tmp_path, good_model):
    path = tmp_path / good_model.name
    path.write_bytes(good_model.read_bytes())
    path.chmod(0)
    if os.geteuid() != 0:
        expect_model_error(path, "not readable")
        return
    # root reads anything: check in a child that has lost the capabilities that allow it
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to test unreadable files as root")
    script = (
        "import sys\nfrom edge_agent.runtime import load_model\n"
        "from edge_agent.errors import ModelError\n"
        "try:\n    load_model(sys.argv[1])\nexcept ModelError as e:\n"
        "    print(e)\n    sys.exit(3)\n"
    )
    result = subprocess.run(
        [
            setpriv,
            "--bounding-set=-dac_override,-dac_read_search",
            sys.executable,
            "-c",
            script,
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3, result.stderr
    assert "not readable by this user" in result.stdout
