"""Reading model inputs from files (``.npy``, ``.npz``, images) for the CLI.

Arrays are fitted to the model's input spec where the intent is unambiguous (a missing batch
axis, NHWC data for an NCHW model); anything else is left for the runtime layer's InputError.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_agent.errors import InputError
from edge_agent.runtime.base import DYNAMIC, TensorSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


def read_inputs(path: Path, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Load ``path`` as inputs for a model with ``specs`` (name -> array)."""
    if not path.exists():
        raise InputError(f"{path}: no such input file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _single(specs, _load_npy(path), path)
    if suffix == ".npz":
        return _from_npz(path, specs)
    if suffix in IMAGE_SUFFIXES:
        return _single(specs, read_image(path, specs[0]), path)
    raise InputError(
        f"{path}: unsupported input file; give a .npy, a .npz (one array per "
        f"input name) or an image ({', '.join(IMAGE_SUFFIXES)})"
    )


def _load_npy(path: Path) -> np.ndarray:
    try:
        array: np.ndarray = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npy array: {exc}") from None
    return array


def _from_npz(path: Path, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz archive: {exc}") from None
    if len(specs) == 1 and len(arrays) == 1:
        return _single(specs, next(iter(arrays.values())), path)
    missing = [spec.name for spec in specs if spec.name not in arrays]
    if missing:
        raise InputError(
            f"{path}: no array for input(s) {', '.join(missing)}; the archive has "
            f"{', '.join(arrays) or 'nothing'}"
        )
    return {spec.name: fit_to_spec(arrays[spec.name], spec) for spec in specs}


def _single(specs: Sequence[TensorSpec], array: np.ndarray, path: Path) -> dict[str, np.ndarray]:
    if len(specs) != 1:
        raise InputError(
            f"{path}: the model takes {len(specs)} inputs "
            f"({', '.join(s.name for s in specs)}); give a .npz keyed by name"
        )
    return {specs[0].name: fit_to_spec(array, specs[0])}


def fit_to_spec(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Add a missing batch axis and turn NHWC into NCHW (or back) when that makes it fit."""
    if _fits(array.shape, spec.shape):
        return array
    if array.ndim == len(spec.shape) - 1 and _fits((1, *array.shape), spec.shape):
        return array[np.newaxis]
    for candidate in (array, array[np.newaxis]):
        if candidate.ndim == 4 == len(spec.shape):
            nchw = candidate.transpose(0, 3, 1, 2)
            if _fits(nchw.shape, spec.shape):
                return np.ascontiguousarray(nchw)
            nhwc = candidate.transpose(0, 2, 3, 1)
            if _fits(nhwc.shape, spec.shape):
                return np.ascontiguousarray(nhwc)
    return array


def _fits(shape: tuple[int, ...], want: tuple[int, ...]) -> bool:
    return len(shape) == len(want) and all(
        w in (DYNAMIC, s) for s, w in zip(shape, want, strict=True)
    )


def image_layout(spec: TensorSpec) -> tuple[str, int, int, int]:
    """('NHWC' | 'NCHW', height, width, channels) of an image input, from its shape."""
    shape = spec.shape
    if len(shape) == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3):
        return "NHWC", shape[1], shape[2], shape[3]
    if len(shape) == 4 and shape[1] in (1, 3):
        return "NCHW", shape[2], shape[3], shape[1]
    if len(shape) == 4 and shape[-1] in (1, 3):
        return "NHWC", shape[1], shape[2], shape[3]
    raise InputError(
        f"input '{spec.name}' with shape {list(shape)} is not an image tensor "
        "(expected [N,H,W,C] or [N,C,H,W] with 1 or 3 channels)"
    )


def read_image(path: Path, spec: TensorSpec) -> np.ndarray:
    """Decode an image and make it the model's input: resized, RGB or gray, scaled to [0, 1].

    Models that need other preprocessing (mean/std, letterbox) declare it in their manifest; the
    pipelines apply that. This is the plain default for `edge-agent infer`.
    """
    try:
        import cv2
    except ImportError:
        raise InputError("reading images needs OpenCV: pip install 'edge-agent[camera]'") from None
    layout, height, width, channels = image_layout(spec)
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    image = cv2.imread(str(path), flag)
    if image is None:
        raise InputError(f"{path}: OpenCV cannot decode this image (corrupt or unsupported)")
    if height > 0 and width > 0 and image.shape[:2] != (height, width):
        interpolation = cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR
        image = cv2.resize(image, (width, height), interpolation=interpolation)
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if channels == 3 else image[..., np.newaxis]
    pixels = image.astype(np.float32) / np.float32(255.0)
    batch = pixels[np.newaxis]
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2)) if layout == "NCHW" else batch
