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
    """Applies a :class:`PreprocessPlan` to BGR (or gray) uint8 frames.

    The work is done at the model's input size wherever that gives the same pixels: the frame
    is resized first and its channels reordered after (a reorder, a dropped alpha or a gray
    channel copied to three commutes with resizing, which works per channel), so a 1080p
    frame is converted at 32x32, not at 1920x1080. Only BGR -> gray, which mixes channels with
    rounding, is done on the full frame, before the resize, as before.

    The last step writes straight into the input array handed to the runtime: the resize (or
    the color reorder) with ``dst=`` when the model takes raw uint8 NHWC pixels, the fused
    normalization with ``out=`` into the tensor (through a transposed view for NCHW)
    otherwise. That array is new for every frame, because observers (drift, sampling) may
    keep it after the inference; only the intermediate buffers, which never leave this
    object, are reused. Hence one thread at a time per instance (a pipeline has its own).
    The result is the same, bit for bit, as converting, resizing and normalizing with fresh
    arrays (tests/unit/pipeline/test_preprocess_buffers.py).
    """

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
        h, w, c = plan.height, plan.width, plan.channels
        self._shape = (1, c, h, w) if plan.layout == "NCHW" else (1, h, w, c)
        # Raw uint8 NHWC pixels: the resize/reorder itself fills the input tensor.
        self._direct = plan.identity and plan.layout == "NHWC"
        # float32 without quantization: the normalization writes the tensor, no float buffer.
        self._float_out = plan.quantization is None and plan.dtype == np.float32
        # x * m + o with one m for every channel is a scalar multiply, and + 0 is no add at all
        # (pixel * m is never -0.0, so skipping it keeps the bits).
        uniform = bool(np.all(plan.multiplier == plan.multiplier[0]))
        self._multiplier = plan.multiplier[0] if uniform else plan.multiplier
        self._offset = None if not np.any(plan.offset) else plan.offset
        self._buffers: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}
        self._geometry: dict[tuple[int, int], tuple[Geometry, tuple[int, int, int, int]]] = {}

    def __call__(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Geometry]:
        """The model inputs for ``image`` and how its pixels map to the input's."""
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise InputError("an image source must give H x W (x C) pixel arrays")
        p, cv2 = self.plan, self._cv2
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if p.color == "gray" and image.ndim == 3:
            gray_code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            image = cv2.cvtColor(image, gray_code)
        geometry, box = self._place(image.shape[0], image.shape[1])
        tensor = np.empty(self._shape, p.dtype)
        hwc = tensor[0] if p.layout == "NHWC" else tensor[0].transpose(1, 2, 0)
        pixel_shape = (p.height, p.width) if p.channels == 1 else (p.height, p.width, p.channels)
        if self._direct:
            pixels = hwc[:, :, 0] if p.channels == 1 else hwc
        else:
            pixels = self._buffer("pixels", pixel_shape, np.uint8)
        code = self._reorder_code(image)
        if code is None:
            self._resample(image, pixels, box, geometry)
        else:
            staged_shape = (p.height, p.width, *image.shape[2:])
            staged = self._buffer("staged", staged_shape, np.uint8)
            self._resample(image, staged, box, geometry)
            _into(cv2.cvtColor(staged, code, dst=pixels), pixels)
        if not self._direct:
            self._normalize(pixels if pixels.ndim == 3 else pixels[:, :, np.newaxis], hwc)
        return {p.input_name: tensor}, geometry

    def _place(self, frame_h: int, frame_w: int) -> tuple[Geometry, tuple[int, int, int, int]]:
        """Geometry and target box (x, y, w, h) for a frame size, computed once per size."""
        known = self._geometry.get((frame_h, frame_w))
        if known is not None:
            return known
        p = self.plan
        if (frame_h, frame_w) == (p.height, p.width):
            geometry = Geometry(frame_w, frame_h, p.width, p.height, 1.0, 1.0, 0.0, 0.0)
            box = (0, 0, p.width, p.height)
        elif p.letterbox:
            ratio = min(p.width / frame_w, p.height / frame_h)
            new_w, new_h = max(1, round(frame_w * ratio)), max(1, round(frame_h * ratio))
            pad_x, pad_y = (p.width - new_w) // 2, (p.height - new_h) // 2
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
            box = (pad_x, pad_y, new_w, new_h)
        else:
            geometry = Geometry(
                frame_w, frame_h, p.width, p.height, p.width / frame_w, p.height / frame_h, 0.0, 0.0
            )
            box = (0, 0, p.width, p.height)
        if len(self._geometry) < 16:  # a stream has one size; a folder of odd sizes stays small
            self._geometry[(frame_h, frame_w)] = (geometry, box)
        return geometry, box

    def _resample(
        self,
        image: np.ndarray,
        dst: np.ndarray,
        box: tuple[int, int, int, int],
        geometry: Geometry,
    ) -> None:
        """Resize ``image`` into ``dst`` (letterboxed: into its box, the rest padded)."""
        cv2 = self._cv2
        x, y, w, h = box
        if (w, h) != (dst.shape[1], dst.shape[0]):
            dst[...] = self.plan.pad_value
            dst = dst[y : y + h, x : x + w]
        if (geometry.scale_x, geometry.scale_y) == (1.0, 1.0):
            np.copyto(dst, image)
            return
        resized = cv2.resize(image, (w, h), dst=dst, interpolation=self._filter(image.shape[0]))
        _into(resized, dst)

    def _normalize(self, pixels: np.ndarray, hwc: np.ndarray) -> None:
        """``hwc`` (a view of the input tensor) = normalized, maybe quantized ``pixels``."""
        p = self.plan
        if p.identity:
            np.copyto(hwc, pixels)
            return
        values = hwc if self._float_out else self._buffer("values", pixels.shape, np.float32)
        np.multiply(pixels, self._multiplier, out=values)
        if self._offset is not None:
            np.add(values, self._offset, out=values)
        if p.quantization is not None:
            q_scale, zero_point = p.quantization
            np.divide(values, q_scale, out=values)
            np.rint(values, out=values)
            np.add(values, zero_point, out=values)
            np.clip(values, self._qmin, self._qmax, out=values)
        if values is not hwc:
            np.copyto(hwc, values, casting="unsafe")

    def _buffer(self, role: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A scratch array private to this preprocessor, reused from frame to frame."""
        key = (role, shape)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = np.empty(shape, dtype)
        return buffer

    def _filter(self, frame_h: int) -> int:
        if self.plan.interpolation is not None:
            return self._interp[self.plan.interpolation]
        return self._interp["area" if frame_h > self.plan.height else "linear"]

    def _reorder_code(self, image: np.ndarray) -> int | None:
        """The OpenCV code that reorders/drops/copies channels into the model's color order.

        None when the frame is already in it (gray frames for a gray model after the
        conversion done up front, BGR frames for a BGR model).
        """
        cv2, color = self._cv2, self.plan.color
        if color == "gray":
            return None
        if image.ndim == 2:
            return int(cv2.COLOR_GRAY2RGB if color == "rgb" else cv2.COLOR_GRAY2BGR)
        if image.shape[2] == 4:
            return int(cv2.COLOR_BGRA2RGB if color == "rgb" else cv2.COLOR_BGRA2BGR)
        if color == "rgb":
            return int(cv2.COLOR_BGR2RGB)
        return None


def _into(result: np.ndarray, dst: np.ndarray) -> None:
    """Make sure an OpenCV call given ``dst=`` really wrote there (it may allocate instead)."""
    if result is not dst and not np.shares_memory(result, dst):
        np.copyto(dst, result.reshape(dst.shape))


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
