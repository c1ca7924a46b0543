"""Loading sample data and fitting it to model inputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge_agent.convert.calibration import (
    feeds_for,
    load_samples,
    read_labels,
    require_samples,
    sample_batches,
)
from edge_agent.errors import InputError
from edge_agent.runtime import TensorSpec

NCHW = [TensorSpec("input", (-1, 1, 8, 8), np.dtype("float32"))]
NHWC = [TensorSpec("serving_default_input:0", (1, 8, 8, 1), np.dtype("float32"))]


def test_npz_with_labels_feeds_both_layouts(models_dir):
    samples = load_samples(models_dir / "digits" / "test_set.npz", NCHW)
    assert samples.count == 360 and samples.labels is not None
    nchw = feeds_for(samples, NCHW)["input"]
    nhwc = feeds_for(samples, NHWC)["serving_default_input:0"]
    assert nchw.shape == (360, 1, 8, 8) and nhwc.shape == (360, 8, 8, 1)
    assert np.array_equal(nchw.transpose(0, 2, 3, 1), nhwc)
    first = next(sample_batches({"input": nchw}))
    assert first["input"].shape == (1, 1, 8, 8)


def test_limit_and_single_npy(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 8, 8, 1), np.float32))
    samples = load_samples(tmp_path / "x.npy", NCHW, limit=10)
    assert samples.count == 10 and samples.labels is None


def test_image_folder_with_class_subfolders(tmp_path, models_dir):
    cv2 = pytest.importorskip("cv2")
    for label in ("3", "7"):
        (tmp_path / label).mkdir()
        for i in range(2):
            image = np.full((16, 16), 40 * (i + 1), np.uint8)
            cv2.imwrite(str(tmp_path / label / f"{i}.png"), image)
    samples = load_samples(tmp_path, NCHW)
    assert samples.count == 4
    assert samples.labels.tolist() == [3, 3, 7, 7]
    assert feeds_for(samples, NCHW)["input"].shape == (4, 1, 8, 8)


def test_shape_mismatch_is_a_clear_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((20, 32, 32, 3), np.float32))
    samples = load_samples(tmp_path / "x.npy", NCHW)
    with pytest.raises(InputError, match=r"shape \[32, 32, 3\] do not fit model input 'input'"):
        feeds_for(samples, NCHW)


def test_too_few_samples(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8, 1), np.float32))
    with pytest.raises(InputError, match="only 3 sample"):
        require_samples(load_samples(tmp_path / "x.npy", NCHW), 16, "calibration")


def test_bad_sources(tmp_path):
    with pytest.raises(InputError, match="no such data"):
        load_samples(tmp_path / "missing.npz", NCHW)
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InputError, match=r"not a readable \.npz"):
        load_samples(tmp_path / "broken.npz", NCHW)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        load_samples(tmp_path / "empty", NCHW)
    np.savez(tmp_path / "uneven.npz", a=np.zeros((4, 8, 8, 1)), b=np.zeros((5, 8, 8, 1)))
    with pytest.raises(InputError, match="different numbers of samples"):
        load_samples(tmp_path / "uneven.npz", NCHW)


def test_labels_file(tmp_path):
    (tmp_path / "labels.txt").write_text("1\n2\n3\n")
    assert read_labels(tmp_path / "labels.txt").tolist() == [1, 2, 3]
    (tmp_path / "names.txt").write_text("cat\ndog\n")
    with pytest.raises(InputError, match="class-names"):
        read_labels(tmp_path / "names.txt")


def test_cli_imports_without_converter_packages():
    """The device install has no TensorFlow/onnx/onnx2tf: the CLI must import and explain."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'onnx', 'onnx2tf', 'keras'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import edge_agent.cli.convert_cmd
from edge_agent.convert.deps import require
try:
    require('onnx2tf', 'ONNX -> TFLite conversion')
except Exception as exc:
    print(type(exc).__name__, exc)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "RuntimeNotInstalledError" in out and "pip install 'edge-agent[convert]'" in out
