"""Preprocessing into the input tensor's buffer gives the same tensors as fresh arrays.

``ImagePreprocessor`` resizes before it reorders channels and writes its last step straight
into the input array (``dst=`` / ``out=``). The reference here is the straightforward way it
was done before: convert the whole frame's colors, resize, normalize with new arrays, transpose
and copy. Every plan (layouts, dtypes, quantization, colors, letterbox, filters) and every kind
of frame (BGR, BGRA, gray, bigger, smaller, same size) must give the same bits.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from edge_agent.config import PreprocessSettings
from edge_agent.pipeline.preprocess import ImagePreprocessor, PreprocessPlan, resolve_plan
from edge_agent.runtime.base import Quantization, TensorSpec

SPECS = {
    "nhwc_f32": TensorSpec("x", (1, 24, 40, 3), np.dtype("float32")),
    "nchw_f32": TensorSpec("x", (-1, 3, 24, 40), np.dtype("float32")),
    "nhwc_u8": TensorSpec("x", (1, 24, 40, 3), np.dtype("uint8")),
    "nchw_u8": TensorSpec("x", (1, 3, 24, 40), np.dtype("uint8")),
    "nhwc_i8q": TensorSpec("x", (1, 24, 40, 3), np.dtype("int8"), Quantization(1 / 255, -128)),
    "nhwc_u8q": TensorSpec("x", (1, 24, 40, 3), np.dtype("uint8"), Quantization(0.02, 3)),
    "nhwc_f16": TensorSpec("x", (1, 24, 40, 3), np.dtype("float16")),
    "gray_f32": TensorSpec("x", (1, 24, 40, 1), np.dtype("float32")),
    "gray_u8": TensorSpec("x", (1, 24, 40, 1), np.dtype("uint8")),
}
SETTINGS = {
    "default": PreprocessSettings(),
    "bgr_mean_std": PreprocessSettings(color="bgr", mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3]),
    "letterbox": PreprocessSettings(letterbox=True, pad_value=114),
    "cubic": PreprocessSettings(interpolation="cubic"),
    "nearest_bgr": PreprocessSettings(interpolation="nearest", color="bgr", letterbox=True),
}
RNG = np.random.default_rng(7)
FRAMES = {
    "bgr_720p": RNG.integers(0, 256, (720, 1280, 3), np.uint8),
    "bgr_odd": RNG.integers(0, 256, (37, 53, 3), np.uint8),
    "bgr_same": RNG.integers(0, 256, (24, 40, 3), np.uint8),
    "bgra": RNG.integers(0, 256, (90, 160, 4), np.uint8),
    "gray": RNG.integers(0, 256, (90, 160), np.uint8),
    "gray_hw1": RNG.integers(0, 256, (12, 20, 1), np.uint8),
}


def reference(plan: PreprocessPlan, image: np.ndarray) -> np.ndarray:
    """The tensor made the plain way: convert, resize, normalize, transpose, copy."""
    interp = {
        "linear": cv2.INTER_LINEAR,
        "area": cv2.INTER_AREA,
        "nearest": cv2.INTER_NEAREST,
        "cubic": cv2.INTER_CUBIC,
    }
    frame_h, frame_w = image.shape[:2]
    gray_in = image.ndim == 2 or image.shape[2] == 1
    if plan.color == "gray":
        if not gray_in:
            code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            image = cv2.cvtColor(image, code)
    elif gray_in:
        image = cv2.cvtColor(
            image, cv2.COLOR_GRAY2RGB if plan.color == "rgb" else cv2.COLOR_GRAY2BGR
        )
    elif image.shape[2] == 4:
        image = cv2.cvtColor(
            image, cv2.COLOR_BGRA2RGB if plan.color == "rgb" else cv2.COLOR_BGRA2BGR
        )
    elif plan.color == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    name = plan.interpolation or ("area" if frame_h > plan.height else "linear")
    if (frame_h, frame_w) != (plan.height, plan.width):
        if plan.letterbox:
            ratio = min(plan.width / frame_w, plan.height / frame_h)
            new_w, new_h = max(1, round(frame_w * ratio)), max(1, round(frame_h * ratio))
            resized = cv2.resize(image, (new_w, new_h), interpolation=interp[name])
            pad_x, pad_y = (plan.width - new_w) // 2, (plan.height - new_h) // 2
            image = cv2.copyMakeBorder(
                resized,
                pad_y,
                plan.height - new_h - pad_y,
                pad_x,
                plan.width - new_w - pad_x,
                cv2.BORDER_CONSTANT,
                value=(plan.pad_value,) * 3,
            )
        else:
            image = cv2.resize(image, (plan.width, plan.height), interpolation=interp[name])
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if plan.identity:
        tensor = image
    else:
        values = image.astype(np.float32) * plan.multiplier + plan.offset
        if plan.quantization is not None:
            info = np.iinfo(plan.dtype)
            q_scale, zero_point = plan.quantization
            values = np.clip(
                np.rint(values / q_scale) + zero_point, float(info.min), float(info.max)
            )
        tensor = values.astype(plan.dtype, copy=False)
    batch = tensor[np.newaxis]
    if plan.layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch)


CASES = [
    (spec, setting)
    for spec, setting in itertools.product(SPECS, SETTINGS)
    if not (spec.startswith("gray") and "bgr" in setting)
]


@pytest.mark.parametrize(("spec", "setting"), CASES)
def test_buffered_preprocessing_matches_fresh_arrays_bit_for_bit(spec: str, setting: str) -> None:
    plan = resolve_plan(SETTINGS[setting], SPECS[spec])
    pre = ImagePreprocessor(plan)
    for frame_name, frame in FRAMES.items():
        for _ in range(2):  # the second call reuses the buffers the first one made
            got = pre(frame)[0]["x"]
            want = reference(plan, frame)
            assert got.dtype == want.dtype and got.shape == want.shape, frame_name
            assert got.flags["C_CONTIGUOUS"], frame_name
            np.testing.assert_array_equal(got, want, err_msg=f"{spec}/{setting}/{frame_name}")


def test_each_frame_gets_its_own_input_array() -> None:
    """Observers (drift, sampling) may keep an input after the inference: it must not change."""
    pre = ImagePreprocessor(resolve_plan(PreprocessSettings(), SPECS["nhwc_u8"]))
    first = pre(FRAMES["bgr_odd"])[0]["x"]
    kept = first.copy()
    second = pre(FRAMES["bgra"])[0]["x"]
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, kept)
