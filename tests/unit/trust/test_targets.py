"""Which model release a device may install: pure decisions."""

from __future__ import annotations

from pathlib import Path

import pytest
from tuf.api.metadata import TargetFile

from edge_agent.errors import UpdateError
from edge_agent.trust.targets import (
    DeltaRef,
    ModelRelease,
    check_installable,
    choose_delta,
    delta_target_path,
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


def delta(path: str = "models/digits/3/d.onnx.delta-from-2.zst", **changes: object) -> DeltaRef:
    fields: dict[str, object] = {
        "target_path": path,
        "length": 5,
        "sha256": "d" * 64,
        "from_release": 2,
        "from_sha256": "b" * 64,
        "from_length": 9,
    }
    fields.update(changes)
    return DeltaRef(**fields)  # type: ignore[arg-type]


def test_delta_pins_travel_in_the_model_target_custom_metadata():
    pin = delta()
    t = TargetFile(10, {"sha256": "a" * 64}, "models/digits/3/d.onnx")
    t.unrecognized_fields["custom"] = model_custom("digits", 3, {"version": "1"}, (pin,))
    release = release_of(t)
    assert release is not None and release.deltas == (pin,)


@pytest.mark.parametrize(
    "raw",
    [
        "not a dict",
        {"path": "models/digits/3/x.zst"},
        {**delta().as_custom(), "bytes": "many"},
        {**delta().as_custom(), "path": "../../etc/passwd"},
    ],
)
def test_a_malformed_delta_pin_is_ignored_and_the_release_still_reads(raw):
    t = target("models/digits/3/d.onnx", "digits", 3)
    t.unrecognized_fields["custom"]["edge_agent"]["deltas"] = [raw]
    release = release_of(t)
    assert release is not None and release.deltas == ()


def test_device_uses_the_smallest_delta_whose_base_it_holds():
    release = ModelRelease(
        "digits",
        3,
        "models/digits/3/d.onnx",
        100,
        "a" * 64,
        {},
        (
            delta(length=40, from_sha256="1" * 64),
            delta(length=20, from_sha256="2" * 64),
            delta(length=10, from_sha256="3" * 64),
            delta(length=100, from_sha256="4" * 64),  # no smaller than the model: never used
        ),
    )
    have = {"1" * 64: Path("one"), "2" * 64: Path("two"), "4" * 64: Path("four")}
    assert choose_delta(release, have) == release.deltas[1]
    assert choose_delta(release, {"4" * 64: Path("four")}) is None
    assert choose_delta(release, {}) is None


def test_delta_target_sits_beside_the_model_named_after_it():
    assert delta_target_path("digits", 3, "d.onnx", 2) == "models/digits/3/d.onnx.delta-from-2.zst"
    assert (
        release_of(TargetFile(1, {"sha256": "a" * 64}, delta_target_path("d", 3, "m", 2))) is None
    )
