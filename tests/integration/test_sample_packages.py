"""The committed sample packages (models/package_samples.sh) verify and load."""

from __future__ import annotations

import pytest

from edge_agent.manifest import verify_package
from edge_agent.runtime import load_model
from edge_agent.telemetry.profile import load_profile
from tests.conftest import MODELS

PACKAGES = sorted((MODELS / "packages").iterdir())


def test_every_sample_model_is_packaged():
    assert [p.name for p in PACKAGES] == [
        "digits-fp32-onnx",
        "digits-fp32-tflite",
        "digits-int8-onnx",
        "digits-int8-tflite",
    ]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_sample_package_verifies_loads_and_has_its_profile(package):
    manifest = verify_package(package)  # sizes and sha256 of every file match the manifest
    model = load_model(package / manifest.model.path)
    assert [spec.name for spec in model.inputs]
    assert load_profile(package / "profile.json").samples == 360
    if "int8" in package.name:
        assert (package / "evaluation.json").exists()
