"""Which model release a device may install: pure decisions."""

from __future__ import annotations

import pytest
from tuf.api.metadata import TargetFile

from edge_agent.errors import UpdateError
from edge_agent.trust.targets import (
    ModelRelease,
    check_installable,
    model_custom,
    model_target_path,
    newest_release,
    release_of,
    releases_of,
)


def target(path: str, name: str, release: int, manifest: dict | None = None) -> TargetFile:
    t = TargetFile(10, {"sha256": "a" * 64}, path)
    t.unrecognized_fields["custom"] = model_custom(name, release, manifest or {"version": "1.0"})
    return t


def test_release_is_read_from_path_and_signed_custom_metadata():
    t = target("models/digits/3/d.tflite", "digits", 3, {"version": "1.2.0", "scale": 0.5})
    release = release_of(t)
    assert release == ModelRelease(
        "digits", 3, t.path, 10, "a" * 64, {"version": "1.2.0", "scale": 0.5}
    )
    assert release.filename == "d.tflite" and release.manifest_version == "1.2.0"


@pytest.mark.parametrize(
    "path,name,release",
    [
        ("models/digits/3/d.tflite", "other", 3),
        ("models/digits/3/d.tflite", "digits", 4),
        ("rollouts/group.json", "digits", 3),
        ("models/digits/0/d.tflite", "digits", 0),
        ("models/digits/3/sub/d.tflite", "digits", 3),
    ],
)
def test_targets_whose_path_and_custom_metadata_disagree_are_not_models(path, name, release):
    assert release_of(target(path, name, release)) is None


def test_newest_release_per_model():
    targets = {
        p: target(p, n, r)
        for p, n, r in [
            ("models/a/1/x.onnx", "a", 1),
            ("models/a/2/x.onnx", "a", 2),
            ("models/b/7/x.onnx", "b", 7),
        ]
    }
    releases = releases_of(targets)
    assert newest_release(releases, "a").release == 2  # type: ignore[union-attr]
    assert newest_release(releases, "c") is None


def test_model_target_path_refuses_unsafe_names():
    assert model_target_path("digits", 2, "m.tflite") == "models/digits/2/m.tflite"
    with pytest.raises(UpdateError):
        model_target_path("../x", 1, "m.tflite")


def test_rejects_downgrade_unless_allowed_and_never_reinstalls_rejected():
    old = release_of(target("models/d/2/m.onnx", "d", 2))
    assert old is not None
    with pytest.raises(UpdateError, match="downgrade refused"):
        check_installable(old, 3, {})
    check_installable(old, 3, {}, allow_downgrade=True)
    with pytest.raises(UpdateError, match="never reinstalled"):
        check_installable(old, 1, {2: "shadow check failed"}, allow_downgrade=True)
    check_installable(old, None, {})
