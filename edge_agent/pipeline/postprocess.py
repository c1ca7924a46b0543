"""Model outputs -> a JSON-able result; the output tensor formats each kind expects.

**classification** — one output (``output:``, default the first) of class scores, ``[1, C]`` or
``[C]``: probabilities, or logits with ``softmax: true``. Result::

    {"top": [{"index": 7, "label": "7", "score": 0.98}, ...]}      # best first, top_k long

**ssd** — two outputs (TensorFlow Object Detection API / MobileNet-SSD before its NMS op):
``boxes_output`` ``[1, N, 4]`` and ``scores_output`` ``[1, N, C]``. Without ``anchors_file`` the
boxes are corners ``(ymin, xmin, ymax, xmax)`` normalized to [0, 1] of the model input. With
``anchors_file`` (a ``.npy`` ``[N, 4]`` of ``(cy, cx, h, w)``, normalized) they are the box
coder's encodings ``(ty, tx, th, tw)``, decoded as ``cy = ty / sy * ha + cya``,
``h = exp(th / sh) * ha`` (same for x, w; ``box_scale`` = (sy, sx, sh, sw), default
10, 10, 5, 5). With ``background_class: true`` score column 0 is background and is ignored;
class ``i`` of the result is score column ``i + 1`` (labels list the real classes only).

**yolo** — one output of candidates, ``[1, N, 5 + C]`` rows ``(cx, cy, w, h, objectness,
class scores...)`` (YOLOv5/v7, ``objectness: true``) or ``[1, N, 4 + C]`` rows ``(cx, cy, w, h,
class scores...)`` (YOLOv8/v11, ``objectness: false``). The transposed export ``[1, 4 + C, N]``
(what Ultralytics writes) is recognised by its shape: the axis of length 4 (or 5) + number
of labels holds the values; without labels, the shorter axis does. Coordinates are
model-input pixels, or [0, 1] with ``normalized: true``; score = objectness x class score.

Both detection kinds then keep boxes scoring at least ``score_threshold`` (best class per box)
and run non-maximum suppression with OpenCV (``cv2.dnn.NMSBoxesBatched`` per class, or
``NMSBoxes`` with ``class_agnostic``). Result, boxes in *frame* pixels (letterbox undone)::

    {"detections": [{"class": 0, "label": "person", "score": 0.91,
                     "box": [x1, y1, x2, y2]}, ...]}                # best first

**segmentation** — one output: class scores ``[1, H, W, C]`` / ``[1, C, H, W]`` (``layout``;
``auto`` takes the smaller of the two candidate axes as classes) or a class-index map
``[1, H, W]``. Result: share of pixels per class, largest first::

    {"height": H, "width": W, "dominant": {...},
     "classes": [{"index": 0, "label": "road", "fraction": 0.61}, ...]}

**raw** — every output: ``{"outputs": {name: {"shape", "dtype", "data"}}}``, ``data`` left out
(``"truncated": true``) for tensors with more than ``max_values`` values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.config import (
    ClassificationPost,
    NmsSettings,
    PostprocessSettings,
    RawPost,
    SegmentationPost,
    SsdPost,
    YoloPost,
)
from edge_agent.errors import InputError
from edge_agent.pipeline.preprocess import Geometry
from edge_agent.runtime.base import TensorSpec

Outputs = Mapping[str, np.ndarray]
Postprocessor = Callable[[Outputs, Geometry | None], dict[str, Any]]


def read_labels(path: Path) -> list[str]:
    """Class names from a text file, one per line (line i = class i)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"labels file {path}: cannot read it ({exc})") from None


def resolve_labels(
    labels: Sequence[str] | None, labels_file: Path | None, manifest: Mapping[str, Any] | None
) -> list[str] | None:
    """Labels from the config list, else the config file, else the manifest; None if none."""
    if labels is not None:
        return list(labels)
    if labels_file is not None:
        return read_labels(labels_file)
    from_manifest = (manifest or {}).get("labels")
    return list(from_manifest) if from_manifest else None


def _label(labels: Sequence[str] | None, index: int) -> str | None:
    return labels[index] if labels is not None and 0 <= index < len(labels) else None


def _pick(outputs: Outputs, name: str | None, position: int = 0) -> np.ndarray:
    if name is not None:
        if name not in outputs:
            raise InputError(f"the model has no output '{name}'; it has {', '.join(outputs)}")
        return outputs[name]
    values = list(outputs.values())
    if position >= len(values):
        raise InputError(
            f"the model has {len(values)} output(s); this postprocessing needs "
            f"at least {position + 1}"
        )
    return values[position]


# -- classification ----------------------------------------------------------------------------


def softmax(scores: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a vector."""
    shifted = np.exp(scores - np.max(scores))
    result: np.ndarray = shifted / shifted.sum()
    return result


def top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(index, score) of the ``k`` best scores, best first (ties: lower index first)."""
    flat = np.asarray(scores, np.float64).reshape(-1)
    k = min(k, flat.size)
    if k <= 0:
        return []
    candidates = np.argpartition(-flat, k - 1)[:k] if k < flat.size else np.arange(flat.size)
    ordered = sorted(candidates.tolist(), key=lambda i: (-flat[i], i))
    return [(int(i), float(flat[i])) for i in ordered]


def classify(
    outputs: Outputs, settings: ClassificationPost, labels: Sequence[str] | None
) -> dict[str, Any]:
    """Top-k classes (see the module docstring for the format)."""
    scores = _pick(outputs, settings.output)
    if scores.ndim == 2:
        scores = scores[0]
    scores = scores.reshape(-1).astype(np.float64)
    if settings.softmax:
        scores = softmax(scores)
    return {
        "top": [
            {"index": i, "label": _label(labels, i), "score": round(s, 6)}
            for i, s in top_k(scores, settings.top_k)
            if s >= settings.min_score
        ]
    }


# -- detection ---------------------------------------------------------------------------------


def decode_ssd_boxes(
    encodings: np.ndarray, anchors: np.ndarray, scale: Sequence[float]
) -> np.ndarray:
    """SSD box-coder encodings ``(ty, tx, th, tw)`` -> corners ``(ymin, xmin, ymax, xmax)``."""
    sy, sx, sh, sw = scale
    ty, tx, th, tw = (encodings[:, i] for i in range(4))
    cya, cxa, ha, wa = (anchors[:, i] for i in range(4))
    cy, cx = ty / sy * ha + cya, tx / sx * wa + cxa
    h, w = np.exp(th / sh) * ha, np.exp(tw / sw) * wa
    return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=1)


def nms(
    boxes_xywh: np.ndarray, scores: np.ndarray, classes: np.ndarray, settings: NmsSettings
) -> list[int]:
    """Indices kept by OpenCV's NMS (per class unless ``class_agnostic``), best first."""
    if len(scores) == 0:
        return []
    import cv2

    boxes = boxes_xywh.astype(np.float64).tolist()
    confidences = scores.astype(np.float64).tolist()
    if settings.class_agnostic:
        kept = cv2.dnn.NMSBoxes(
            boxes, confidences, settings.score_threshold, settings.iou_threshold
        )
    else:
        kept = cv2.dnn.NMSBoxesBatched(
            boxes,
            confidences,
            classes.astype(np.int32).tolist(),
            settings.score_threshold,
            settings.iou_threshold,
        )
    order = sorted((int(i) for i in np.asarray(kept).reshape(-1)), key=lambda i: -scores[i])
    return order[: settings.max_detections]


def _detections(
    corners_px: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    settings: NmsSettings,
    labels: Sequence[str] | None,
    geometry: Geometry | None,
) -> dict[str, Any]:
    """Threshold + NMS over boxes ``(x1, y1, x2, y2)`` in model-input pixels."""
    keep = scores >= settings.score_threshold
    corners_px, scores, classes = corners_px[keep], scores[keep], classes[keep]
    xywh = (
        np.stack(
            [
                corners_px[:, 0],
                corners_px[:, 1],
                corners_px[:, 2] - corners_px[:, 0],
                corners_px[:, 3] - corners_px[:, 1],
            ],
            axis=1,
        )
        if len(scores)
        else corners_px
    )
    found = []
    for i in nms(xywh, scores, classes, settings):
        x1, y1, x2, y2 = (float(v) for v in corners_px[i])
        if geometry is not None:
            x1, y1 = geometry.to_frame(x1, y1)
            x2, y2 = geometry.to_frame(x2, y2)
        found.append(
            {
                "class": int(classes[i]),
                "label": _label(labels, int(classes[i])),
                "score": round(float(scores[i]), 6),
                "box": [round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)],
            }
        )
    return {"detections": found}


def _input_size(geometry: Geometry | None) -> tuple[float, float]:
    return (
        (1.0, 1.0)
        if geometry is None
        else (float(geometry.input_width), float(geometry.input_height))
    )


def detect_ssd(
    outputs: Outputs,
    settings: SsdPost,
    labels: Sequence[str] | None,
    anchors: np.ndarray | None,
    geometry: Geometry | None,
) -> dict[str, Any]:
    """SSD-style decode + NMS (formats in the module docstring)."""
    boxes = _pick(outputs, settings.boxes_output, 0).reshape(-1, 4).astype(np.float64)
    scores = _pick(outputs, settings.scores_output, 1)
    scores = scores.reshape(boxes.shape[0], -1).astype(np.float64)
    if anchors is not None:
        if anchors.shape != boxes.shape:
            raise InputError(f"ssd: {anchors.shape[0]} anchors for {boxes.shape[0]} boxes")
        boxes = decode_ssd_boxes(boxes, anchors, settings.box_scale)
    if settings.background_class:
        scores = scores[:, 1:]
    classes = np.argmax(scores, axis=1)
    best = scores[np.arange(len(classes)), classes]
    width, height = _input_size(geometry)
    corners = np.stack(
        [boxes[:, 1] * width, boxes[:, 0] * height, boxes[:, 3] * width, boxes[:, 2] * height],
        axis=1,
    )
    return _detections(corners, best, classes, settings.nms, labels, geometry)


def detect_yolo(
    outputs: Outputs, settings: YoloPost, labels: Sequence[str] | None, geometry: Geometry | None
) -> dict[str, Any]:
    """YOLO-style decode + NMS (formats in the module docstring)."""
    raw = _pick(outputs, settings.output)
    rows = raw[0] if raw.ndim == 3 else raw
    if rows.ndim != 2:
        raise InputError(f"yolo: expected an output [1, N, K], got {list(raw.shape)}")
    first_class = 5 if settings.objectness else 4
    row_length = first_class + len(labels) if labels else None
    if (rows.shape[0] == row_length and rows.shape[1] != row_length) or (
        row_length is None and rows.shape[0] < rows.shape[1]
    ):
        rows = rows.T  # Ultralytics' [4 + C, N] export
    if rows.shape[1] <= first_class:
        raise InputError(f"yolo: rows of {rows.shape[1]} values have no class scores")
    rows = rows.astype(np.float64)
    class_scores = rows[:, first_class:]
    if settings.objectness:
        class_scores = class_scores * rows[:, 4:5]
    classes = np.argmax(class_scores, axis=1)
    best = class_scores[np.arange(len(classes)), classes]
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    if settings.normalized:
        width, height = _input_size(geometry)
        cx, w, cy, h = cx * width, w * width, cy * height, h * height
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return _detections(corners, best, classes, settings.nms, labels, geometry)


# -- segmentation and raw ----------------------------------------------------------------------


def segmentation_summary(
    outputs: Outputs, settings: SegmentationPost, labels: Sequence[str] | None
) -> dict[str, Any]:
    """Share of pixels per class (formats in the module docstring)."""
    out = _pick(outputs, settings.output)
    mask = out[0] if out.ndim in (3, 4) and out.shape[0] == 1 else out
    if mask.ndim == 3:
        layout = settings.layout
        if layout == "auto":
            layout = "NHWC" if mask.shape[-1] <= mask.shape[0] else "NCHW"
        mask = np.argmax(mask, axis=-1 if layout == "NHWC" else 0)
    if mask.ndim != 2:
        raise InputError(f"segmentation: cannot read an output of shape {list(out.shape)}")
    class_map = np.rint(mask).astype(np.int64) if mask.dtype.kind == "f" else mask.astype(np.int64)
    if class_map.size and class_map.min() < 0:
        raise InputError("segmentation: the class map has negative class indices")
    counts = np.bincount(class_map.ravel())
    total = max(int(class_map.size), 1)
    classes = [
        {"index": i, "label": _label(labels, i), "fraction": round(int(c) / total, 6)}
        for i, c in enumerate(counts.tolist())
        if c and c / total >= settings.min_fraction
    ]
    classes.sort(key=lambda item: (-float(item["fraction"] or 0.0), int(item["index"] or 0)))
    return {
        "height": int(class_map.shape[0]),
        "width": int(class_map.shape[1]),
        "dominant": classes[0] if classes else None,
        "classes": classes,
    }


def raw_outputs(outputs: Outputs, settings: RawPost) -> dict[str, Any]:
    """Every output tensor as JSON (formats in the module docstring)."""
    result = {}
    for name, array in outputs.items():
        entry: dict[str, Any] = {"shape": list(array.shape), "dtype": str(array.dtype)}
        if array.size <= settings.max_values:
            entry["data"] = array.reshape(-1).tolist()
        else:
            entry["truncated"] = True
        result[name] = entry
    return {"outputs": result}


def build_postprocessor(
    settings: PostprocessSettings,
    outputs: Sequence[TensorSpec],
    manifest: Mapping[str, Any] | None = None,
) -> Postprocessor:
    """A callable ``(outputs, geometry) -> result`` for ``settings``; loads labels/anchors once."""
    del outputs  # output names are checked per call, since a hot swap may change them
    if isinstance(settings, RawPost):
        return lambda out, _geometry: raw_outputs(out, settings)
    labels = resolve_labels(settings.labels, settings.labels_file, manifest)
    if isinstance(settings, ClassificationPost):
        return lambda out, _geometry: classify(out, settings, labels)
    if isinstance(settings, SegmentationPost):
        return lambda out, _geometry: segmentation_summary(out, settings, labels)
    if isinstance(settings, YoloPost):
        return lambda out, geometry: detect_yolo(out, settings, labels, geometry)
    anchors = None
    if settings.anchors_file is not None:
        try:
            anchors = np.load(settings.anchors_file, allow_pickle=False).astype(np.float64)
        except (OSError, ValueError) as exc:
            raise InputError(f"ssd anchors {settings.anchors_file}: cannot read ({exc})") from None
        if anchors.ndim != 2 or anchors.shape[1] != 4:
            raise InputError(
                f"ssd anchors {settings.anchors_file}: expected [N, 4] "
                f"(cy, cx, h, w), got {list(anchors.shape)}"
            )
    return lambda out, geometry: detect_ssd(out, settings, labels, anchors, geometry)
