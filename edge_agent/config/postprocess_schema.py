"""Config of pipeline postprocessing (``pipelines[].postprocess``): output tensors -> result.

A discriminated union keyed by ``type`` (classification, ssd, yolo, segmentation, raw).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from edge_agent.config.base import StrictModel


class _Labelled(StrictModel):
    labels: list[str] | None = Field(
        default=None, description="Class names by index; default: the manifest's labels."
    )
    labels_file: Path | None = Field(
        default=None, description="Text file with one class name per line (line i = class i)."
    )
    output: str | None = Field(
        default=None, description="Output tensor to read; default: the model's first output."
    )


class ClassificationPost(_Labelled):
    """Top-k classes of a score vector ``[1, C]`` or ``[C]``."""

    type: Literal["classification"] = Field(description="`classification`.")
    top_k: int = Field(default=3, ge=1, le=1000, description="How many classes to report.")
    softmax: bool = Field(
        default=False, description="Apply softmax first (for models that output logits)."
    )
    min_score: float = Field(default=0.0, ge=0.0, description="Leave out classes scoring less.")


class NmsSettings(StrictModel):
    """Score threshold and non-maximum suppression (OpenCV `NMSBoxes`)."""

    score_threshold: float = Field(default=0.25, ge=0.0, le=1.0, description="Minimum score.")
    iou_threshold: float = Field(
        default=0.45, gt=0.0, le=1.0, description="Boxes overlapping more are suppressed."
    )
    class_agnostic: bool = Field(
        default=False,
        description="Suppress across classes (one box per object) instead of per class.",
    )
    max_detections: int = Field(default=100, ge=1, le=10000, description="Keep at most this many.")


class SsdPost(_Labelled):
    """SSD-style detection: box encodings + per-anchor class scores (see docs/pipelines.md)."""

    type: Literal["ssd"] = Field(description="`ssd`.")
    boxes_output: str | None = Field(
        default=None, description="Output with boxes `[1, N, 4]`; default: the first output."
    )
    scores_output: str | None = Field(
        default=None, description="Output with scores `[1, N, C]`; default: the second output."
    )
    anchors_file: Path | None = Field(
        default=None,
        description="`.npy` of anchors `[N, 4]` as (cy, cx, h, w), normalized. Set: boxes are "
        "encodings (ty, tx, th, tw) decoded against the anchors. Unset: boxes are already "
        "(ymin, xmin, ymax, xmax), normalized.",
    )
    box_scale: list[float] = Field(
        default_factory=lambda: [10.0, 10.0, 5.0, 5.0],
        min_length=4,
        max_length=4,
        description="Encoding scale factors (y, x, h, w) of the SSD box coder.",
    )
    background_class: bool = Field(
        default=True, description="Score column 0 is background (skipped; labels shift by one)."
    )
    nms: NmsSettings = Field(default_factory=NmsSettings, description="Thresholds and NMS.")


class YoloPost(_Labelled):
    """YOLO-style detection: one tensor of candidate boxes (see docs/pipelines.md)."""

    type: Literal["yolo"] = Field(description="`yolo`.")
    objectness: bool = Field(
        default=True,
        description="Rows are (cx, cy, w, h, objectness, class scores...) as in YOLOv5/v7; "
        "`false`: (cx, cy, w, h, class scores...) as in YOLOv8/v11.",
    )
    normalized: bool = Field(
        default=False,
        description="Box coordinates are in [0, 1] of the input instead of input pixels.",
    )
    nms: NmsSettings = Field(default_factory=NmsSettings, description="Thresholds and NMS.")


class SegmentationPost(_Labelled):
    """Summary of a segmentation output: share of pixels per class."""

    type: Literal["segmentation"] = Field(description="`segmentation`.")
    layout: Literal["auto", "NHWC", "NCHW"] = Field(
        default="auto",
        description="Layout of a score output `[1, H, W, C]` / `[1, C, H, W]`; class-index "
        "maps `[1, H, W]` need none.",
    )
    min_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Leave out classes covering less than this."
    )


class RawPost(StrictModel):
    """The output tensors as they are (shape, dtype, values)."""

    type: Literal["raw"] = Field(description="`raw`.")
    max_values: int = Field(
        default=4096, ge=0, description="Tensors with more values are reported truncated."
    )


PostprocessSettings = Annotated[
    ClassificationPost | SsdPost | YoloPost | SegmentationPost | RawPost,
    Field(discriminator="type"),
]
