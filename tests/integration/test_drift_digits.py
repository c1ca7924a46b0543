"""Drift detection on real data: the digits test split through the real ONNX model.

The reference profile is built from the held-out test split (360 images) and the model's own
outputs on it, as the converter does from validation data. Clean windows are bootstrap samples
of that split (the reference's own distribution); drifted windows apply a real shift to them.
A second reference, built from the 1437 training images of scikit-learn's digits, checks the
input signal on data it has never seen.

Measured (window 100, raise_after 2): every shift raises an alarm at window 2, the earliest
the hysteresis allows; 0 / 100 clean windows raise an alarm. The numbers are printed with
``-s``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import DriftSettings
from edge_agent.runtime import load_model
from edge_agent.telemetry.drift import DriftDetector
from edge_agent.telemetry.profile import build_profile

WINDOW = 100
CLEAN_WINDOWS = 100
SHIFTED_WINDOWS = 6
MAX_DETECTION_WINDOW = 3
MAX_FALSE_ALARM_RATE = 0.02


@pytest.fixture(scope="module")
def digits(models_dir: Path):
    data = np.load(models_dir / "digits" / "test_set.npz")
    model = load_model(models_dir / "digits" / "digits_fp32.onnx")
    name = model.inputs[0].name

    def run(x: np.ndarray) -> np.ndarray:
        out = model.run({name: np.moveaxis(x, -1, 1).astype(np.float32)})
        return next(iter(out.values()))

    return data["x"], data["y"], run


def rotate(x: np.ndarray, degrees: float) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    matrix = cv2.getRotationMatrix2D((3.5, 3.5), degrees, 1.0)
    return np.stack([cv2.warpAffine(im[..., 0], matrix, (8, 8))[..., None] for im in x])


def count_alarms(detector: DriftDetector, windows: list[np.ndarray], run) -> tuple[int, dict]:
    first: dict[str, int] = {}
    alarm_windows = 0
    for i, x in enumerate(windows, start=1):
        result = detector.evaluate_batch(x, run(x))
        raised = [name for name, state in result.alarms.items() if state.level == "alarm"]
        alarm_windows += bool(raised)
        for name in raised:
            first.setdefault(name, i)
    return alarm_windows, first


def test_clean_windows_rarely_alarm(digits) -> None:
    x, _, run = digits
    reference = build_profile(x, run(x))
    detector = DriftDetector(reference, DriftSettings(window_size=WINDOW))
    rng = np.random.default_rng(0)
    windows = [x[rng.choice(len(x), WINDOW)] for _ in range(CLEAN_WINDOWS)]
    alarms, first = count_alarms(detector, windows, run)
    rate = alarms / CLEAN_WINDOWS
    print(f"\nfalse-alarm rate on {CLEAN_WINDOWS} clean windows: {rate:.2%} (first: {first})")
    assert rate <= MAX_FALSE_ALARM_RATE


SHIFTS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "brightness_plus_0.15": lambda x, rng: np.clip(x + 0.15, 0, 1),
    "contrast_times_0.7": lambda x, rng: x * 0.7,
    "gaussian_noise_0.1": lambda x, rng: np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1),
    "rotation_15deg": lambda x, rng: rotate(x, 15),
}


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_injected_shift_is_detected_within_windows(digits, shift: str) -> None:
    x, _, run = digits
    reference = build_profile(x, run(x))
    detector = DriftDetector(reference, DriftSettings(window_size=WINDOW))
    rng = np.random.default_rng(1)
    windows = [
        SHIFTS[shift](x[rng.choice(len(x), WINDOW)], rng).astype(np.float32)
        for _ in range(SHIFTED_WINDOWS)
    ]
    _, first = count_alarms(detector, windows, run)
    print(f"\n{shift}: first alarm window per signal {first}")
    assert min(first.values(), default=99) <= MAX_DETECTION_WINDOW
    assert first.get("input", 99) <= MAX_DETECTION_WINDOW


def test_class_imbalance_is_detected_as_prediction_drift(digits) -> None:
    x, y, run = digits
    reference = build_profile(x, run(x))
    detector = DriftDetector(reference, DriftSettings(window_size=WINDOW))
    rng = np.random.default_rng(2)
    weights = np.where(y < 3, 6.0, 1.0)
    weights /= weights.sum()
    windows = [x[rng.choice(len(x), WINDOW, p=weights)] for _ in range(SHIFTED_WINDOWS)]
    _, first = count_alarms(detector, windows, run)
    print(f"\nclass imbalance (digits 0-2 x6): first alarm window per signal {first}")
    assert first.get("prediction", 99) <= MAX_DETECTION_WINDOW


def test_input_signal_holds_on_unseen_training_rows(digits) -> None:
    """Reference from the training images, clean windows from the held-out split."""
    datasets = pytest.importorskip("sklearn.datasets")
    x, _, _ = digits
    everything = (datasets.load_digits().images / 16.0).astype(np.float32)[..., None]
    held_out = {row.tobytes() for row in x}
    train = np.stack([row for row in everything if row.tobytes() not in held_out])
    assert len(train) == 1437
    reference = build_profile(train)  # inputs only: the model is over-confident on train rows
    detector = DriftDetector(reference, DriftSettings(window_size=WINDOW))
    rng = np.random.default_rng(3)
    windows = [x[rng.choice(len(x), WINDOW)] for _ in range(CLEAN_WINDOWS)]
    alarms = 0
    for window in windows:
        alarms += detector.evaluate_batch(window, None).alarms["input"].level == "alarm"
    print(
        f"\ninput false-alarm rate, train reference vs held-out windows: "
        f"{alarms / CLEAN_WINDOWS:.2%}"
    )
    assert alarms / CLEAN_WINDOWS <= MAX_FALSE_ALARM_RATE
