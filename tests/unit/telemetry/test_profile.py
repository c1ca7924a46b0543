from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.errors import ModelError
from edge_agent.telemetry.profile import (
    FORMAT_VERSION,
    Profile,
    build_profile,
    detect_layout,
    load_profile,
    merge,
    save_profile,
)

RNG = np.random.default_rng(7)


def images(n: int, shift: float = 0.0) -> np.ndarray:
    return np.clip(RNG.uniform(0, 1, (n, 16, 16, 3)) + shift, 0, 1).astype(np.float32)


def scores(n: int) -> np.ndarray:
    return RNG.normal(size=(n, 5)).astype(np.float32)


def test_merge_of_two_windows_equals_profile_of_the_union() -> None:
    ref = build_profile(images(300), scores(300))
    x, y = images(120), scores(120)
    a = build_profile(x[:50], y[:50], reference=ref, meta={"start": 10.0, "end": 20.0})
    b = build_profile(x[50:], y[50:], reference=ref, meta={"start": 20.0, "end": 30.0})
    union = build_profile(x, y, reference=ref)
    merged = merge(a, b).to_dict()
    whole = union.to_dict()
    assert merged["features"].keys() == whole["features"].keys()
    for name, hist in whole["features"].items():
        assert merged["features"][name]["counts"] == hist["counts"]
        np.testing.assert_allclose(merged["features"][name]["sums"], hist["sums"], rtol=1e-9)
        assert merged["features"][name]["min"] == hist["min"]
    assert merged["prediction"]["class_counts"] == whole["prediction"]["class_counts"]
    assert (
        merged["prediction"]["confidence"]["counts"] == whole["prediction"]["confidence"]["counts"]
    )
    assert merged["quality"] == whole["quality"]
    assert merged["meta"]["start"] == 10.0 and merged["meta"]["end"] == 30.0
    assert merged["meta"]["windows"] == 2


def test_profile_round_trips_through_json_and_file(tmp_path: Path) -> None:
    ref = build_profile(images(100), scores(100), labels=list("abcde"))
    data = json.loads(json.dumps(ref.to_dict()))
    assert data["format_version"] == FORMAT_VERSION
    again = Profile.from_dict(data)
    assert again.to_dict() == ref.to_dict()
    path = tmp_path / "profile.json"
    save_profile(ref, path)
    assert load_profile(path).to_dict() == ref.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["profile.json"]  # no temp file left


def test_image_features_cover_channels_brightness_sharpness_and_grid() -> None:
    ref = build_profile(images(50))
    names = set(ref.features)
    assert {"ch0_mean", "ch2_std", "brightness", "sharpness", "grid_0_0", "grid_3_3"} <= names
    assert ref.layout == "nhwc" and ref.image == {"downsample": 64, "grid": 4}


def test_large_frames_are_downsampled_before_statistics() -> None:
    frames = np.zeros((2, 480, 640, 3), dtype=np.uint8)
    frames[:, :, 320:] = 255
    ref = build_profile(frames, downsample=32)
    assert ref.features["brightness"].mean() == pytest.approx(127.5, rel=1e-3)


def test_window_of_a_different_reference_cannot_be_merged() -> None:
    ref_a, ref_b = build_profile(images(100)), build_profile(images(100, 0.2))
    a = build_profile(images(10), reference=ref_a)
    b = build_profile(images(10), reference=ref_b)
    with pytest.raises(ModelError, match="different references"):
        merge(a, b)


def test_quality_counts_nan_out_of_range_and_constant_samples() -> None:
    ref = build_profile(RNG.uniform(0, 1, (200, 4)), value_range=(0.0, 1.0))
    window = np.array(
        [[0.1, 0.2, 0.3, 0.4], [np.nan, 0.1, 0.1, 0.1], [0.5, 0.5, 0.5, 0.5], [2.0, 0.1, 0.2, 0.3]]
    )
    q = build_profile(window, reference=ref).quality
    assert (q.samples, q.nan_samples, q.constant_samples, q.out_of_range_samples) == (4, 1, 1, 1)


def test_tabular_features_use_names_and_quantile_edges() -> None:
    data = RNG.normal(size=(1000, 2))
    ref = build_profile(data, feature_names=["speed", "temp"], bins=4)
    assert list(ref.features) == ["speed", "temp"]
    counts = ref.features["speed"].counts
    assert counts[0] == 0 and counts[-1] == 0 and all(240 <= c <= 260 for c in counts[1:-1])
    assert ref.features["speed"].quantile(0.5) == pytest.approx(np.median(data[:, 0]), abs=0.05)


def test_float_outputs_become_an_output_feature() -> None:
    x = RNG.normal(size=(100, 3))
    ref = build_profile(x, x.sum(axis=1))
    assert "output" in ref.features and ref.class_counts is None
    window = build_profile(x[:10], x[:10].sum(axis=1), reference=ref)
    assert window.features["output"].count == 10


def test_constant_reference_feature_gets_a_usable_bin() -> None:
    ref = build_profile(np.zeros((50, 2)))
    assert ref.features["f0"].counts[1] == 50


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((4, 3), "features"), ((4, 8, 8), "hw"), ((4, 8, 8, 1), "nhwc"), ((4, 3, 32, 32), "nchw")],
)
def test_detect_layout(shape: tuple[int, ...], layout: str) -> None:
    assert detect_layout(shape) == layout


def test_ambiguous_layout_asks_for_it() -> None:
    with pytest.raises(ModelError, match="layout="):
        detect_layout((4, 8, 8, 8))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format_version=99),
        lambda d: d.pop("features"),
        lambda d: d["features"]["ch0_mean"].update(edges=[1.0, 0.0]),
        lambda d: d["features"]["ch0_mean"].update(counts=[1, 2]),
        lambda d: d.update(kind="banana"),
        lambda d: d["quality"].pop("samples"),
    ],
)
def test_malformed_profiles_raise_model_error(mutate) -> None:
    data = build_profile(images(20)).to_dict()
    mutate(data)
    with pytest.raises(ModelError):
        Profile.from_dict(data)


def test_truncated_profile_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(build_profile(images(20)).to_dict())[:100])
    with pytest.raises(ModelError, match="not readable JSON"):
        load_profile(path)


def test_empty_batch_and_mismatched_outputs_are_rejected() -> None:
    with pytest.raises(ModelError, match="empty"):
        build_profile(np.zeros((0, 3)))
    with pytest.raises(ModelError, match="outputs have"):
        build_profile(np.zeros((3, 3)), np.zeros((2, 4)))
