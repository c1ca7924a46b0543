"""Capture strategies on a real model: what is stored is what the model saw and said."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.capture import SampleCapture, SampleStore
from edge_agent.config import CaptureSettings
from edge_agent.errors import ConfigError
from edge_agent.runtime import load_model
from edge_agent.serving import LoadedVersion, ServedModel

MODELS = Path(__file__).resolve().parent.parent.parent / "models" / "digits32"


def served_digits32() -> ServedModel:
    path = MODELS / "digits32_int8.tflite"
    labels = (MODELS / "labels.txt").read_text().splitlines()
    return ServedModel(
        "digits32",
        LoadedVersion("digits32", "1", load_model(path), path, manifest={"labels": labels}),
    )


def digit_inputs(count: int) -> tuple[list[np.ndarray], list[int]]:
    import cv2

    with np.load(MODELS.parent / "digits" / "test_set.npz") as data:
        x, y = data["x"][:count], data["y"][:count]
    images = [
        np.repeat(
            cv2.resize(img[:, :, 0], (32, 32), interpolation=cv2.INTER_LINEAR)[None, :, :, None],
            3,
            axis=3,
        ).astype(np.float32)
        for img in x
    ]
    return images, [int(v) for v in y]


def noise(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((1, 32, 32, 3)).astype(np.float32) for _ in range(count)]


def run_all(served: ServedModel, inputs: list[np.ndarray]) -> None:
    name = served.active.inputs[0].name
    for x in inputs:
        served.run({name: x})


def test_low_confidence_and_by_class_capture_store_exact_inputs_and_outputs(tmp_path):
    settings = CaptureSettings.model_validate(
        {
            "enabled": True,
            "on_drift": None,
            "low_confidence": {"max_confidence": 0.9},
            "by_class": {"rates": {"7": 1.0}},
        }
    )
    served = served_digits32()
    with SampleStore(tmp_path) as store:
        capture = SampleCapture(settings, store, seed=1)
        assert capture.attach(served)
        digits, labels = digit_inputs(60)
        run_all(served, digits + noise(20))
        capture.close()
        samples = store.list()
        by_strategy = {
            s: [x for x in samples if x.strategy == s] for s in ("class", "low_confidence")
        }
        sevens = [d for d, label in zip(digits, labels, strict=True) if label == 7]
        assert len(by_strategy["class"]) >= len(sevens) - 1  # confident 7s
        assert all(s.prediction == 7 for s in by_strategy["class"])
        assert all(s.confidence < 0.9 for s in by_strategy["low_confidence"])
        assert len(by_strategy["low_confidence"]) >= 10  # noise is rarely confident
        name = served.active.inputs[0].name
        for info in samples[:10]:
            inputs, outputs = store.load(info.id)
            replay = served.run({name: inputs[name]})  # same input -> same output
            assert np.allclose(
                replay.outputs[next(iter(replay.outputs))], next(iter(outputs.values()))
            )
            assert info.version == "1" and info.delegate == replay.delegate


def test_random_reservoir_on_demand_and_drift(tmp_path):
    now = [0.0]
    settings = CaptureSettings.model_validate(
        {
            "enabled": True,
            "random_rate": 0.1,
            "reservoir": {"size": 5, "window_s": 10},
            "on_drift": {"rate": 1.0, "max_samples": 4},
        }
    )
    served = served_digits32()
    with SampleStore(tmp_path) as store:
        capture = SampleCapture(settings, store, clock=lambda: now[0], seed=3)
        capture.attach(served)
        digits, _ = digit_inputs(50)
        run_all(served, digits * 4)  # 200 inferences, window 1
        now[0] = 11.0
        assert capture.capture_now(3) == 3
        capture.drift_alarm("digits32", raised=True)
        run_all(served, digits[:20])  # window 2: 3 on demand, then 4 for drift, then random
        capture.drift_alarm("digits32", raised=False)
        capture.close()  # flushes window 2's reservoir
        counts = capture.stats()["models"]["digits32"]
        assert counts["reservoir"] == 10 and counts["on_demand"] == 3 and counts["drift"] == 4
        assert 8 <= counts["random"] <= 35
        assert store.stats()["samples"] == sum(counts.values())
        assert capture.stats()["dropped_queue"] == 0


def test_queue_overflow_drops_and_counts_instead_of_blocking(tmp_path):
    settings = CaptureSettings.model_validate(
        {"enabled": True, "random_rate": 1.0, "queue_size": 1, "on_drift": None}
    )
    served = served_digits32()
    with SampleStore(tmp_path) as store:
        capture = SampleCapture(settings, store)
        capture.attach(served)
        run_all(served, noise(200))
        capture.close()
        stats = capture.stats()
        assert stats["dropped_queue"] > 0
        assert stats["written"] + stats["dropped_queue"] == 200


def test_unknown_capture_class_is_a_config_error(tmp_path):
    settings = CaptureSettings.model_validate({"by_class": {"rates": {"cat": 0.5}}})
    with SampleStore(tmp_path) as store:
        capture = SampleCapture(settings, store)
        with pytest.raises(ConfigError, match="cat"):
            capture.attach(served_digits32())
        capture.close()
