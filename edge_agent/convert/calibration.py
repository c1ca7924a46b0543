"""Sample data for calibration, evaluation and profiling: image folders, ``.npy`` and ``.npz``.

A :class:`SampleSet` holds the samples as stored (any layout), plus labels when the data has
them; :func:`feeds_for` fits it to one model's inputs (batch axis, NHWC <-> NCHW, dtype), so the
same data set drives an NCHW ONNX reference and an NHWC TFLite candidate.

Where samples come from:

* ``DATA.npz``: one array per input name (or a single array for a single-input model); an array
  named ``y``/``labels``/``label``/``target``/``targets`` holds integer class labels;
* ``DATA.npy``: one array of samples ``[N, ...]`` for a single-input model;
* a directory of images (decoded with OpenCV, resized to the model's input, scaled to [0, 1]);
  images in sub-directories are labelled by the sub-directory name (ImageFolder style);
* a directory of ``.npy`` / ``.npz`` files, concatenated in name order.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import InputError
from edge_agent.runtime.base import DYNAMIC, TensorSpec
from edge_agent.runtime.tools.inputs import IMAGE_SUFFIXES, fit_to_spec, image_layout, read_image

LABEL_KEYS = ("y", "labels", "label", "target", "targets")
SINGLE = ""
"""Key of the one array of a data set that is not keyed by input name."""


@dataclass(frozen=True)
class SampleSet:
    """Samples as stored: input name (or ``SINGLE``) -> ``[N, ...]``, and optional labels."""

    arrays: dict[str, np.ndarray]
    source: str
    labels: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)
    """For image folders: the class name of each label index."""

    @property
    def count(self) -> int:
        """Number of samples."""
        return int(next(iter(self.arrays.values())).shape[0])


@dataclass(frozen=True)
class DataSource:
    """Where samples will come from, loaded once the model's input specs are known."""

    path: Path
    limit: int | None = None
    class_names: tuple[str, ...] | None = None

    def load(self, specs: Sequence[TensorSpec]) -> SampleSet:
        """:func:`load_samples` for a model with ``specs``."""
        return load_samples(self.path, specs, limit=self.limit, class_names=self.class_names)


def load_samples(
    path: Path,
    specs: Sequence[TensorSpec],
    *,
    limit: int | None = None,
    class_names: Sequence[str] | None = None,
) -> SampleSet:
    """Load samples for a model with input ``specs`` (used for image size and batch rank).

    Raises InputError for a missing path, an unreadable or empty source, arrays whose sample
    counts differ, and labels that are not integers.
    """
    if not path.exists():
        raise InputError(f"{path}: no such data file or directory")
    if path.is_dir():
        samples = _from_directory(path, specs, class_names)
    elif path.suffix.lower() == ".npz":
        samples = _from_npz(path)
    elif path.suffix.lower() == ".npy":
        samples = SampleSet({SINGLE: _load_npy(path)}, source=str(path))
    else:
        raise InputError(
            f"{path}: unsupported data; give a directory of images or arrays, "
            "a .npy of samples [N, ...] or a .npz (one array per input name)"
        )
    samples = _batched(samples, specs)
    _check_counts(samples)
    if limit is not None and limit < samples.count:
        samples = SampleSet(
            {k: v[:limit] for k, v in samples.arrays.items()},
            samples.source,
            None if samples.labels is None else samples.labels[:limit],
            samples.class_names,
        )
    return samples


def read_labels(path: Path) -> np.ndarray:
    """Ground-truth class indices from a ``.npy`` (``[N]`` ints) or a text file (one per line)."""
    if not path.is_file():
        raise InputError(f"{path}: no such labels file")
    if path.suffix.lower() == ".npy":
        labels = _load_npy(path)
    else:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        try:
            labels = np.array([int(line) for line in lines if line], dtype=np.int64)
        except ValueError:
            raise InputError(
                f"{path}: labels must be integer class indices, one per line, in "
                "data order (is this a class-names file? pass it to --class-names)"
            ) from None
    return _as_labels(labels, str(path))


def require_samples(samples: SampleSet, minimum: int, purpose: str) -> None:
    """InputError when there are fewer than ``minimum`` samples for ``purpose``."""
    if samples.count < minimum:
        raise InputError(
            f"{samples.source}: only {samples.count} sample(s) for {purpose}; at least {minimum} "
            "are needed for activation ranges that represent the data (a few hundred is better). "
            "Add samples, or lower the minimum with --min-samples if you know what you are doing"
        )


def feeds_for(samples: SampleSet, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """The samples as ``[N, ...]`` arrays per input name, in each input's layout and dtype.

    Raises InputError when an input has no array or the arrays cannot be made to fit its shape
    (a different image size, channel count or layout than the model takes).
    """
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        array = _array_for(samples, spec, len(specs))
        feeds[spec.name] = _fit_batch(array, spec, samples.source)
    return feeds


def sample_batches(
    feeds: Mapping[str, np.ndarray], start: int = 0, stop: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """One ``{name: [1, ...]}`` feed per sample."""
    count = next(iter(feeds.values())).shape[0]
    for index in range(start, count if stop is None else min(stop, count)):
        yield {name: array[index : index + 1] for name, array in feeds.items()}


def ort_calibration_reader(feeds: Mapping[str, np.ndarray], advance: Callable[[int], None]) -> Any:
    """An onnxruntime CalibrationDataReader over ``feeds`` that advances a progress bar."""
    from edge_agent.convert.deps import require

    ort_quant = require("onnxruntime.quantization", "static quantization")

    class _Reader(ort_quant.CalibrationDataReader):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self._batches = sample_batches(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            if batch is not None:
                advance(1)
            return batch

        def rewind(self) -> None:
            self._batches = sample_batches(feeds)

    return _Reader()


# --------------------------------------------------------------------------- internals


def _array_for(samples: SampleSet, spec: TensorSpec, input_count: int) -> np.ndarray:
    if spec.name in samples.arrays:
        return samples.arrays[spec.name]
    if input_count == 1 and len(samples.arrays) == 1:
        return next(iter(samples.arrays.values()))
    raise InputError(
        f"{samples.source}: no array for model input '{spec.name}'; the data has "
        f"{', '.join(repr(k) for k in samples.arrays) or 'none'}. For several "
        "inputs, give a .npz with one array per input name"
    )


def _fit_batch(array: np.ndarray, spec: TensorSpec, source: str) -> np.ndarray:
    batch_spec = TensorSpec(spec.name, (DYNAMIC, *spec.shape[1:]), spec.dtype, spec.quantization)
    fitted = fit_to_spec(array, batch_spec)
    if not _fits(fitted.shape, batch_spec.shape):
        want = (
            "["
            + ", ".join(
                "N" if i == 0 else ("?" if d == DYNAMIC else str(d))
                for i, d in enumerate(batch_spec.shape)
            )
            + "]"
        )
        raise InputError(
            f"{source}: samples of shape {list(array.shape[1:])} do not fit model input "
            f"'{spec.name}' {want} (tried adding a batch axis and NHWC <-> NCHW). Resize the data "
            "to the model's input, or check that the data belongs to this model"
        )
    if spec.dtype.kind == "f" and fitted.dtype != spec.dtype:
        fitted = fitted.astype(spec.dtype)
    return np.ascontiguousarray(fitted)


def _fits(shape: tuple[int, ...], want: tuple[int, ...]) -> bool:
    return len(shape) == len(want) and all(
        w in (DYNAMIC, s) for s, w in zip(shape, want, strict=True)
    )


def _batched(samples: SampleSet, specs: Sequence[TensorSpec]) -> SampleSet:
    """Add the batch axis to arrays that hold a single sample (rank one less than the input)."""
    ranks = {spec.name: len(spec.shape) for spec in specs}
    only_rank = len(specs[0].shape) if len(specs) == 1 else None
    arrays = {}
    for key, array in samples.arrays.items():
        rank = ranks.get(key, only_rank)
        arrays[key] = array[np.newaxis] if rank is not None and array.ndim == rank - 1 else array
    return SampleSet(arrays, samples.source, samples.labels, samples.class_names)


def _check_counts(samples: SampleSet) -> None:
    counts = {key: array.shape[0] if array.ndim else 0 for key, array in samples.arrays.items()}
    if not counts or min(counts.values()) == 0:
        raise InputError(f"{samples.source}: the data holds no samples")
    if len(set(counts.values())) > 1:
        raise InputError(f"{samples.source}: arrays hold different numbers of samples: {counts}")
    if samples.labels is not None and samples.labels.shape[0] != samples.count:
        raise InputError(
            f"{samples.source}: {samples.labels.shape[0]} labels for {samples.count} samples"
        )


def _load_npy(path: Path) -> np.ndarray:
    try:
        with path.open("rb") as handle:  # our handle: np.load leaks its own when parsing fails
            array: np.ndarray = np.load(handle, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy array: {exc}") from None
    return array


def _from_npz(path: Path) -> SampleSet:
    try:
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz archive: {exc}") from None
    labels = None
    for key in LABEL_KEYS:
        if key in arrays:
            labels = _as_labels(arrays.pop(key), f"{path}[{key}]")
            break
    if not arrays:
        raise InputError(f"{path}: the archive holds no input arrays")
    if len(arrays) == 1:
        arrays = {SINGLE: next(iter(arrays.values()))}
    return SampleSet(arrays, source=str(path), labels=labels)


def _as_labels(labels: np.ndarray, where: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        labels = labels.argmax(axis=1)
    labels = labels.reshape(-1)
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise InputError(f"{where}: labels must be integer class indices, got {labels.dtype}")
    return labels.astype(np.int64)


def _from_directory(
    path: Path, specs: Sequence[TensorSpec], class_names: Sequence[str] | None
) -> SampleSet:
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    arrays = [p for p in files if p.suffix.lower() in (".npy", ".npz")]
    if images and arrays:
        raise InputError(f"{path}: holds both images and arrays; put them in separate folders")
    if images:
        return _from_images(path, images, specs, class_names)
    if not arrays:
        raise InputError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) or .npy/.npz files")
    parts = [
        _from_npz(p)
        if p.suffix.lower() == ".npz"
        else _batched(SampleSet({SINGLE: _load_npy(p)}, str(p)), specs)
        for p in arrays
    ]
    keys = set(parts[0].arrays)
    if any(set(part.arrays) != keys for part in parts):
        raise InputError(f"{path}: the array files do not all hold the same inputs")
    merged = {key: np.concatenate([part.arrays[key] for part in parts]) for key in keys}
    labels = None
    if all(part.labels is not None for part in parts):
        labels = np.concatenate([part.labels for part in parts if part.labels is not None])
    return SampleSet(merged, source=str(path), labels=labels)


def _from_images(
    path: Path, images: list[Path], specs: Sequence[TensorSpec], class_names: Sequence[str] | None
) -> SampleSet:
    if len(specs) != 1:
        raise InputError(
            f"{path}: an image folder feeds single-input models only; this model "
            f"takes {len(specs)} inputs (give a .npz keyed by input name)"
        )
    _, height, width, channels = image_layout(specs[0])
    if height <= 0 or width <= 0:
        raise InputError(
            f"{path}: model input '{specs[0].name}' {list(specs[0].shape)} has an open height or "
            "width, so images cannot be resized to it: give --input-shape with the size the "
            "device will feed (e.g. 1,3,48,192)"
        )
    nhwc = TensorSpec(specs[0].name, (1, height, width, channels), np.dtype(np.float32))
    decoded = np.concatenate([read_image(image, nhwc) for image in images])
    classes = [
        image.relative_to(path).parts[0]
        for image in images
        if len(image.relative_to(path).parts) > 1
    ]
    if len(classes) != len(images):
        return SampleSet({SINGLE: decoded}, source=str(path))
    names = list(class_names) if class_names else _class_order(classes)
    unknown = sorted(set(classes) - set(names))
    if unknown:
        raise InputError(
            f"{path}: sub-folder(s) {', '.join(unknown)} are not in the class names given"
        )
    labels = np.array([names.index(name) for name in classes], dtype=np.int64)
    return SampleSet({SINGLE: decoded}, source=str(path), labels=labels, class_names=names)


def _class_order(classes: list[str]) -> list[str]:
    unique = sorted(set(classes))
    if all(name.isdigit() for name in unique):
        return [str(i) for i in range(max(int(name) for name in unique) + 1)]
    return unique
