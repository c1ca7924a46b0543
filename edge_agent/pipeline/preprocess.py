"""Frame -> model input: resize or letterbox, color order, normalize, layout, dtype/quantize.

Where each setting comes from, first match wins: the pipeline config (``preprocess:``), the model
package manifest (``preprocessing``, when its ``kind`` is ``image``), then the model's input
spec (size, layout, channels, dtype, quantization). :func:`resolve_plan` makes that decision once
(pure, unit-tested); :class:`ImagePreprocessor` applies it to every frame with a handful of
OpenCV/numpy calls and no per-frame decisions.

Normalization is fused: ``x = pixel * (scale / std) + (-mean / std)``, per channel, in float32.
Integer model inputs with quantization parameters are then quantized:
``q = clip(round(x / q_scale) + zero_point)``.

Letterboxing keeps the aspect ratio and pads; the :class:`Geometry` it returns maps model
coordinates back to frame pixels, which detection postprocessing uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.config import PreprocessSettings
from edge_agent.errors import InputError
from edge_agent.pipeline.mqtt_source import SINGLE_INPUT
from edge_agent.runtime.base import TensorSpec
from edge_agent.runtime.tools.inputs import fit_to_spec, image_layout

_INTEGER_KINDS = "iu"


@dataclass(frozen=True)
class Geometry:
    """How frame pixels map to model input pixels: ``model = frame * scale + pad``."""

    frame_width: int
    frame_height: int
    input_width: int
    input_height: int
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        """Model input pixel coordinates -> frame pixel coordinates, clipped to the frame."""
        fx = (x - self.pad_x) / self.scale_x
        fy = (y - self.pad_y) / self.scale_y
        return (
            min(max(fx, 0.0), float(self.frame_width)),
            min(max(fy, 0.0), float(self.frame_height)),
        )


@dataclass(frozen=True)
class PreprocessPlan:
    """Every decision of the image preprocessing, made once per model version."""

    input_name: str
    layout: str
    height: int
    width: int
    channels: int
    color: str
    letterbox: bool
    pad_value: int
    interpolation: str | None
    multiplier: np.ndarray
    """Per-channel ``scale / std`` (float32)."""
    offset: np.ndarray
    """Per-channel ``-mean / std`` (float32)."""
    identity: bool
    """No arithmetic at all (raw uint8 pixels into a uint8 model)."""
    dtype: np.dtype
    quantization: tuple[float, int] | None


def _per_channel(
    values: Sequence[float] | None, channels: int, default: float, what: str
) -> np.ndarray:
    if values is None:
        return np.full(channels, default, np.float32)
    if len(values) == 1:
        return np.full(channels, values[0], np.float32)
    if len(values) != channels:
        raise InputError(
            f"preprocess {what} has {len(values)} values; the model input has "
            f"{channels} channel(s): give 1 or {channels}"
        )
    return np.asarray(values, np.float32)


def resolve_plan(
    settings: PreprocessSettings,
    spec: TensorSpec,
    manifest_preprocessing: Mapping[str, Any] | None = None,
) -> PreprocessPlan:
    """Decide the image preprocessing for input ``spec`` (InputError if it is not an image)."""
    manifest = dict(manifest_preprocessing or {})
    if manifest.get("kind") != "image":
        manifest = {}
    spec_layout, spec_h, spec_w, channels = image_layout(spec)
    layout = settings.layout or manifest.get("layout") or spec_layout
    resize = settings.resize or manifest.get("resize") or [spec_h, spec_w]
    height, width = int(resize[0]), int(resize[1])
    if height <= 0 or width <= 0:
        raise InputError(
            f"input '{spec.name}' has a dynamic size {list(spec.shape)}: set preprocess.resize "
            "[height, width] in the pipeline config"
        )
    color = settings.color or manifest.get("color") or ("gray" if channels == 1 else "rgb")
    if (color == "gray") != (channels == 1):
        raise InputError(
            f"preprocess color '{color}' does not fit input '{spec.name}' with "
            f"{channels} channel(s)"
        )
    dtype = np.dtype(spec.dtype if settings.dtype == "auto" else settings.dtype)
    quantization = None
    if dtype.kind in _INTEGER_KINDS and spec.quantization is not None and dtype == spec.dtype:
        quantization = (spec.quantization.scale, spec.quantization.zero_point)
    raw_integer = dtype.kind in _INTEGER_KINDS and quantization is None
    default_scale = 1.0 if raw_integer else 1.0 / 255.0
    scale = settings.scale if settings.scale is not None else manifest.get("scale", default_scale)
    mean = settings.mean if settings.mean is not None else manifest.get("mean")
    std = settings.std if settings.std is not None else manifest.get("std")
    std_values = _per_channel(std, channels, 1.0, "std")
    mean_values = _per_channel(mean, channels, 0.0, "mean")
    multiplier = (np.float32(scale) / std_values).astype(np.float32)
    offset = (-mean_values / std_values).astype(np.float32)
    identity = (
        raw_integer
        and dtype == np.uint8
        and bool(np.all(multiplier == 1.0))
        and bool(np.all(offset == 0.0))
    )
    letterbox = settings.letterbox if settings.letterbox is not None else False
    return PreprocessPlan(
        input_name=spec.name,
        layout=layout,
        height=height,
        width=width,
        channels=channels,
        color=color,
        letterbox=letterbox,
        pad_value=settings.pad_value,
        interpolation=settings.interpolation,
        multiplier=multiplier,
        offset=offset,
        identity=identity,
        dtype=dtype,
        quantization=quantization,
    )


class ImagePreprocessor:
    """Applies a :class:`PreprocessPlan` to BGR (or gray) uint8 frames."""

    def __init__(self, plan: PreprocessPlan) -> None:
        """Bind the plan to OpenCV constants."""
        import cv2

        self.plan = plan
        self._cv2 = cv2
        self._interp = {
            "linear": cv2.INTER_LINEAR,
            "area": cv2.INTER_AREA,
            "nearest": cv2.INTER_NEAREST,
            "cubic": cv2.INTER_CUBIC,
        }
        if plan.quantization is not None:
            info = np.iinfo(plan.dtype)
            self._qmin, self._qmax = float(info.min), float(info.max)

    def __call__(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Geometry]:
        """The model inputs for ``image`` and how its pixels map to the input's."""
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise InputError("an image source must give H x W (x C) pixel arrays")
        p, cv2 = self.plan, self._cv2
        frame_h, frame_w = image.shape[:2]
        image = self._convert_color(image)
        if (frame_h, frame_w) == (p.height, p.width):
            geometry = Geometry(frame_w, frame_h, p.width, p.height, 1.0, 1.0, 0.0, 0.0)
        elif p.letterbox:
            image, geometry = self._letterbox(image, frame_w, frame_h)
        else:
            image = cv2.resize(image, (p.width, p.height), interpolation=self._filter(frame_h))
            geometry = Geometry(
                frame_w, frame_h, p.width, p.height, p.width / frame_w, p.height / frame_h, 0.0, 0.0
            )
        if image.ndim == 2:
            image = image[:, :, np.newaxis]
        if p.identity:
            tensor = image
        else:
            values = image.astype(np.float32) * p.multiplier + p.offset
            if p.quantization is not None:
                q_scale, zero_point = p.quantization
                values = np.clip(np.rint(values / q_scale) + zero_point, self._qmin, self._qmax)
            tensor = values.astype(p.dtype, copy=False)
        batch = tensor[np.newaxis]
        if p.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        return {p.input_name: np.ascontiguousarray(batch)}, geometry

    def _filter(self, frame_h: int) -> int:
        if self.plan.interpolation is not None:
            return self._interp[self.plan.interpolation]
        return self._interp["area" if frame_h > self.plan.height else "linear"]

    def _convert_color(self, image: np.ndarray) -> np.ndarray:
        cv2, color = self._cv2, self.plan.color
        gray_in = image.ndim == 2 or image.shape[2] == 1
        if color == "gray":
            if gray_in:
                return image
            gray: np.ndarray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            return gray
        if gray_in:
            code = cv2.COLOR_GRAY2RGB if color == "rgb" else cv2.COLOR_GRAY2BGR
        elif image.shape[2] == 4:
            code = cv2.COLOR_BGRA2RGB if color == "rgb" else cv2.COLOR_BGRA2BGR
        elif color == "rgb":
            code = cv2.COLOR_BGR2RGB
        else:
            return image
        converted: np.ndarray = cv2.cvtColor(image, code)
        return converted

    def _letterbox(
        self, image: np.ndarray, frame_w: int, frame_h: int
    ) -> tuple[np.ndarray, Geometry]:
        p, cv2 = self.plan, self._cv2
        ratio = min(p.width / frame_w, p.height / frame_h)
        new_w, new_h = max(1, round(frame_w * ratio)), max(1, round(frame_h * ratio))
        resized = cv2.resize(image, (new_w, new_h), interpolation=self._filter(frame_h))
        pad_x, pad_y = (p.width - new_w) // 2, (p.height - new_h) // 2
        padded = cv2.copyMakeBorder(
            resized,
            pad_y,
            p.height - new_h - pad_y,
            pad_x,
            p.width - new_w - pad_x,
            cv2.BORDER_CONSTANT,
            value=(p.pad_value,) * 3,
        )
        geometry = Geometry(
            frame_w,
            frame_h,
            p.width,
            p.height,
            new_w / frame_w,
            new_h / frame_h,
            float(pad_x),
            float(pad_y),
        )
        return padded, geometry


class TensorPreprocessor:
    """Named tensors (MQTT source) -> model inputs: batch axis / layout fitted, floats cast."""

    def __init__(self, specs: Sequence[TensorSpec]) -> None:
        """Inputs are matched to ``specs`` by name (a lone unnamed array to the only input)."""
        self.specs = tuple(specs)

    def __call__(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fitted inputs; InputError names the missing ones."""
        if SINGLE_INPUT in arrays:
            if len(self.specs) != 1:
                raise InputError(
                    f"a single array was sent but the model takes {len(self.specs)} "
                    "inputs; send a .npz or JSON keyed by input name"
                )
            arrays = {self.specs[0].name: arrays[SINGLE_INPUT]}
        missing = [s.name for s in self.specs if s.name not in arrays]
        if missing:
            raise InputError(
                f"no tensor for input(s) {', '.join(missing)}; got {', '.join(arrays) or 'none'}"
            )
        out = {}
        for spec in self.specs:
            array = fit_to_spec(arrays[spec.name], spec)
            if array.dtype.kind == "f" and np.dtype(spec.dtype).kind == "f":
                array = array.astype(spec.dtype, copy=False)
            out[spec.name] = array
        return out
