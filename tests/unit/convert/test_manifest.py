"""edge_agent.manifest: schema, load/save, package verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.errors import ModelError
from edge_agent.manifest import (
    MANIFEST_FILENAME,
    FileRef,
    ModelManifest,
    QuantizationInfo,
    TensorInfo,
    file_ref,
    load_manifest,
    save_manifest,
    verify_package,
    version_key,
)


def _manifest(package: Path) -> ModelManifest:
    model = package / "m.tflite"
    model.write_bytes(b"\x00\x00\x00\x00TFL3" + b"x" * 100)
    return ModelManifest(
        name="digits",
        version="1.2.0",
        format="tflite",
        model=file_ref(model, package),
        quantization=QuantizationInfo(scheme="full-integer", weights="int8", activations="int8"),
        inputs=[TensorInfo(name="in", shape=[1, 8, 8, 1], dtype="int8", layout="NHWC")],
        outputs=[TensorInfo(name="out", shape=[1, 10], dtype="int8")],
        labels=[str(i) for i in range(10)],
        min_agent_version="0.1.0",
    )


def test_round_trip_and_verify(tmp_path):
    manifest = _manifest(tmp_path)
    save_manifest(manifest, tmp_path / MANIFEST_FILENAME)
    assert load_manifest(tmp_path / MANIFEST_FILENAME) == manifest
    assert verify_package(tmp_path) == manifest


def test_rejects_tampered_model_file(tmp_path):
    save_manifest(_manifest(tmp_path), tmp_path / MANIFEST_FILENAME)
    data = bytearray((tmp_path / "m.tflite").read_bytes())
    data[-1] ^= 1
    (tmp_path / "m.tflite").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 differs"):
        verify_package(tmp_path)


def test_rejects_truncated_model_file(tmp_path):
    save_manifest(_manifest(tmp_path), tmp_path / MANIFEST_FILENAME)
    (tmp_path / "m.tflite").write_bytes(b"\x00\x00\x00\x00TFL3")
    with pytest.raises(ModelError, match="truncated or replaced"):
        verify_package(tmp_path)


def test_rejects_path_traversal_in_file_ref():
    with pytest.raises(ValueError, match="inside the package"):
        FileRef(path="../../etc/passwd", bytes=1, sha256="0" * 64)
    with pytest.raises(ValueError, match="inside the package"):
        FileRef(path="/etc/passwd", bytes=1, sha256="0" * 64)


def test_unknown_key_is_named(tmp_path):
    raw = json.loads(_manifest(tmp_path).model_dump_json())
    raw["inputs"][0]["colour"] = "red"
    (tmp_path / MANIFEST_FILENAME).write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=r"inputs\.0\.colour: Extra inputs are not permitted"):
        load_manifest(tmp_path / MANIFEST_FILENAME)


def test_newer_schema_asks_to_upgrade(tmp_path):
    raw = json.loads(_manifest(tmp_path).model_dump_json())
    raw["schema_version"] = 2
    (tmp_path / MANIFEST_FILENAME).write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="upgrade edge-agent"):
        load_manifest(tmp_path / MANIFEST_FILENAME)


def test_truncated_json_names_the_line(tmp_path):
    text = _manifest(tmp_path).model_dump_json(indent=2)
    (tmp_path / MANIFEST_FILENAME).write_text(text[: len(text) // 2])
    with pytest.raises(ModelError, match="not valid JSON at line"):
        load_manifest(tmp_path / MANIFEST_FILENAME)


def test_bad_name_and_version(tmp_path):
    good = _manifest(tmp_path).model_dump()
    for key, value in (("name", "Digits Model"), ("version", "v1")):
        with pytest.raises(ValueError, match=key):
            ModelManifest.model_validate({**good, key: value})


def test_version_key_orders_numerically():
    assert version_key("1.10.0") > version_key("1.9.3")
    assert version_key("2") == version_key("2.0.0")
    assert version_key("1.2.0-rc1") == (1, 2, 0)
