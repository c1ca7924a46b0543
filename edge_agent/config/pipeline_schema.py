"""Config schema of pipelines (``pipelines:``) and sampled capture (``capture:``).

Same rules as :mod:`edge_agent.config.schema`: unknown keys are errors and every field has a
description. Sources, postprocessors and sinks are discriminated unions keyed by ``type``, so a
typo in ``type`` names the allowed kinds and every kind only accepts its own keys.

The agent config holds them as ``pipelines: list[PipelineSettings]`` and
``capture: CaptureSettings``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.config.base import StrictModel

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_TIME_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


# -- sources -----------------------------------------------------------------------------------


class ReconnectSettings(StrictModel):
    """Backoff between attempts to (re)open a stream that failed or dropped."""

    initial_s: float = Field(default=0.5, gt=0.0, le=60.0, description="First delay (seconds).")
    max_s: float = Field(default=30.0, gt=0.0, le=3600.0, description="Longest delay (seconds).")
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0, description="Growth per failure.")
    jitter: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Random share added to or taken from each delay (0.2: +-20%), so many "
        "devices that lost the same camera server do not retry in lockstep.",
    )
    open_timeout_s: float = Field(
        default=10.0, gt=0.0, le=300.0, description="How long OpenCV may take to open the stream."
    )
    read_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=300.0,
        description="A read that waits longer than this counts as a dropped stream.",
    )


class CameraSource(StrictModel):
    """A local camera (V4L2 on Linux) read through OpenCV."""

    type: Literal["camera"] = Field(description="`camera`.")
    device: int | str = Field(
        default=0, description="Camera index (`0` = /dev/video0) or a device path."
    )
    width: int | None = Field(default=None, ge=1, description="Requested frame width (pixels).")
    height: int | None = Field(default=None, ge=1, description="Requested frame height.")
    fps: float | None = Field(default=None, gt=0.0, description="Requested camera frame rate.")
    reconnect: ReconnectSettings = Field(
        default_factory=ReconnectSettings, description="Reopen with backoff when it fails."
    )


class VideoSource(StrictModel):
    """A video file decoded by OpenCV (FFmpeg)."""

    type: Literal["video"] = Field(description="`video`.")
    path: Path = Field(description="Video file (anything FFmpeg decodes).")
    loop: bool = Field(default=False, description="Start again at the end instead of stopping.")
    realtime: bool = Field(
        default=False,
        description="Play at the file's frame rate and drop the oldest frames when inference "
        "is slower (like a live camera). Off: every frame is processed, as fast as possible.",
    )


class RtspSource(StrictModel):
    """A network stream (RTSP, HTTP MJPEG, ...) read through OpenCV's FFmpeg backend."""

    type: Literal["rtsp"] = Field(description="`rtsp`.")
    url: str = Field(
        pattern=r"^(rtsps?|https?|rtmp|udp|tcp)://\S+$",
        description="Stream URL, e.g. `rtsp://user:pass@10.0.0.5:554/stream1` or an HTTP MJPEG "
        "URL. Keep credentials out of shared config files where you can.",
    )
    transport: Literal["tcp", "udp"] = Field(
        default="tcp",
        description="RTSP transport; `tcp` survives lossy Wi-Fi better (sets FFmpeg "
        "`rtsp_transport` for this process).",
    )
    reconnect: ReconnectSettings = Field(
        default_factory=ReconnectSettings, description="Reconnect with backoff when it drops."
    )


class FolderSource(StrictModel):
    """Image files appearing in a folder (e.g. dropped by another program or an FTP server)."""

    type: Literal["folder"] = Field(description="`folder`.")
    path: Path = Field(description="Folder to watch.")
    patterns: list[str] = Field(
        default_factory=lambda: ["*.jpg", "*.jpeg", "*.png", "*.bmp", "*.webp"],
        min_length=1,
        description="Glob patterns of the files to process (case-sensitive).",
    )
    poll_interval_s: float = Field(
        default=0.5, gt=0.0, le=60.0, description="Seconds between folder scans."
    )
    settle_s: float = Field(
        default=0.2,
        ge=0.0,
        le=60.0,
        description="A file is read only once its size and mtime have not changed for this "
        "long (so half-copied files are not read). Writers that rename into place can use 0.",
    )
    after: Literal["keep", "delete", "move"] = Field(
        default="keep",
        description="What to do with a processed file: `keep` (remembered for this run), "
        "`delete`, or `move` into `done_dir`.",
    )
    done_dir: Path | None = Field(default=None, description="Where `after: move` puts files.")
    include_existing: bool = Field(
        default=True, description="Also process files already there at start."
    )

    @model_validator(mode="after")
    def _move_needs_dir(self) -> FolderSource:
        if self.after == "move" and self.done_dir is None:
            raise ValueError("`after: move` needs `done_dir:` (where processed files go)")
        return self


class MqttSource(StrictModel):
    """Tensors published on an MQTT topic (by a sensor or another device).

    Payloads: a `.npy` file's bytes (one input), a `.npz` archive keyed by input name, or JSON
    `{"inputs": [{"name", "shape", "datatype", "data"}]}` (Open Inference Protocol style).
    """

    type: Literal["mqtt"] = Field(description="`mqtt`.")
    topic: str = Field(
        min_length=1,
        max_length=1024,
        description="Topic filter to subscribe to (wildcards allowed).",
    )
    qos: Literal[0, 1] = Field(default=1, description="Subscription QoS.")
    max_payload_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Larger payloads are rejected (counted as errors) before decoding.",
    )


SourceSettings = Annotated[
    CameraSource | VideoSource | RtspSource | FolderSource | MqttSource,
    Field(discriminator="type"),
]


# -- preprocessing -----------------------------------------------------------------------------


class PreprocessSettings(StrictModel):
    """What happens to a frame before the model sees it.

    Unset keys come from the model package manifest (``preprocessing``), then from the model's
    input spec (size, layout, channels, dtype and quantization).
    """

    resize: list[int] | None = Field(
        default=None, description="[height, width]; default: the model input's size."
    )
    letterbox: bool | None = Field(
        default=None,
        description="Keep the aspect ratio and pad (with `pad_value`) instead of stretching; "
        "detection boxes are mapped back to frame coordinates either way.",
    )
    pad_value: int = Field(default=114, ge=0, le=255, description="Letterbox padding value.")
    interpolation: Literal["linear", "area", "nearest", "cubic"] | None = Field(
        default=None,
        description="Resize filter; default: `area` when shrinking, `linear` when enlarging.",
    )
    color: Literal["rgb", "bgr", "gray"] | None = Field(
        default=None,
        description="Channel order the model expects (frames arrive as BGR from OpenCV); "
        "default: manifest, else `rgb` for 3 channels and `gray` for 1.",
    )
    scale: float | None = Field(
        default=None,
        description="Pixels are multiplied by this first (1/255 turns 8-bit pixels into "
        "[0, 1]); default: manifest, else 1/255 for float models and 1 for integer ones.",
    )
    mean: list[float] | None = Field(
        default=None, description="Subtracted per channel after scaling (1 or C values)."
    )
    std: list[float] | None = Field(
        default=None, description="Divided per channel after the mean (1 or C values)."
    )
    layout: Literal["NHWC", "NCHW"] | None = Field(
        default=None, description="Tensor layout; default: manifest, else read from the shape."
    )
    dtype: Literal["auto", "float32", "float16", "uint8", "int8"] = Field(
        default="auto",
        description="`auto`: the model input's dtype; integer inputs with quantization "
        "parameters are quantized (`q = round(x / scale) + zero_point`).",
    )

    @field_validator("resize")
    @classmethod
    def _two_dims(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 2 or min(value) <= 0):
            raise ValueError("resize is [height, width], both positive")
        return value

    @field_validator("std")
    @classmethod
    def _no_zero_std(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(v == 0 for v in value):
            raise ValueError("std values must not be 0")
        return value


# -- postprocessing ----------------------------------------------------------------------------


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


# -- sinks -------------------------------------------------------------------------------------


class MqttSink(StrictModel):
    """Results as JSON on `ea/v1/<device>/results/<pipeline>`."""

    type: Literal["mqtt"] = Field(description="`mqtt`.")
    qos: Literal[0, 1, 2] = Field(default=0, description="Publish QoS (0: latest wins).")
    retain: bool = Field(default=False, description="Keep the latest result on the broker.")
    every_n: int = Field(default=1, ge=1, description="Publish every n-th result only.")


class JsonlSink(StrictModel):
    """Results appended to a local JSON-lines file, rotated by size."""

    type: Literal["jsonl"] = Field(description="`jsonl`.")
    path: Path = Field(description="File to append to (its folder is created).")
    max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Rotate to `<path>.1` (replacing it) when the file grows past this.",
    )


SinkSettings = Annotated[MqttSink | JsonlSink, Field(discriminator="type")]


# -- pipeline ----------------------------------------------------------------------------------


class PipelineSettings(StrictModel):
    """One pipeline: source -> preprocess -> model -> postprocess -> sinks, on its own thread."""

    name: str = Field(pattern=_NAME, description="Pipeline name (results topic, metrics).")
    model: str = Field(description="Name of a served model (from `models:`).")
    source: SourceSettings = Field(description="Where frames come from (by `type`).")
    preprocess: PreprocessSettings = Field(
        default_factory=PreprocessSettings, description="Frame -> input tensor."
    )
    postprocess: PostprocessSettings = Field(
        default_factory=lambda: RawPost(type="raw"),
        description="Output tensors -> result (by `type`).",
    )
    sinks: list[SinkSettings] = Field(default_factory=list, description="Where results go.")
    max_fps: float | None = Field(
        default=None,
        gt=0.0,
        description="Frame-rate cap: live sources skip frames beyond it, files are paced.",
    )
    queue_size: int = Field(
        default=2,
        ge=1,
        le=1024,
        description="Frames waiting for inference; live sources drop the oldest beyond it "
        "(counted), so results stay fresh.",
    )
    enabled: bool = Field(default=True, description="Start this pipeline.")


# -- capture -----------------------------------------------------------------------------------


class ReservoirSettings(StrictModel):
    """Keep a uniform random sample of fixed size from every time window."""

    size: int = Field(ge=1, le=10000, description="Samples kept per window.")
    window_s: float = Field(default=3600.0, gt=0.0, description="Window length (seconds).")


class LowConfidenceSettings(StrictModel):
    """Capture inferences near the decision threshold (where labels help most)."""

    max_confidence: float = Field(
        default=0.6,
        gt=0.0,
        le=1.0,
        description="Capture when the top score is below this.",
    )
    max_margin: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Also capture when top-1 minus top-2 score is below this.",
    )
    rate: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Share of qualifying inferences kept."
    )


class ByClassSettings(StrictModel):
    """Capture inferences predicted as given classes, at a rate per class."""

    rates: dict[str, float] = Field(
        description="Class (label, or index as a string) -> share kept, e.g. `{person: 0.1}`."
    )

    @field_validator("rates")
    @classmethod
    def _rates_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not 0.0 < v <= 1.0]
        if bad:
            raise ValueError(f"rates must be in (0, 1]; wrong for {', '.join(bad)}")
        return value


class DriftCaptureSettings(StrictModel):
    """While a drift alarm is raised (the agent calls the capturer), capture at a rate."""

    rate: float = Field(default=0.05, gt=0.0, le=1.0, description="Share captured meanwhile.")
    max_samples: int = Field(
        default=500, ge=1, description="At most this many per alarm (then it waits for the next)."
    )


class UploadSettings(StrictModel):
    """Background upload of captured samples to the monitor over MQTT."""

    enabled: bool = Field(default=True, description="Upload when connected.")
    chunk_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Payload bytes per MQTT message.",
    )
    inflight_chunks: int = Field(
        default=8, ge=1, le=1000, description="Chunks published before waiting for PUBACKs."
    )
    max_bytes_per_s: float | None = Field(
        default=None, gt=0.0, description="Bandwidth cap (payload bytes/s); unset: none."
    )
    only_on_mains: bool = Field(
        default=False,
        description="Upload only while on mains power (no discharging battery).",
    )
    time_window: str | None = Field(
        default=None,
        description="Local time window `HH:MM-HH:MM` for uploads (may span midnight, e.g. "
        "`22:00-06:00`); unset: any time.",
    )
    delete_after_upload: bool = Field(
        default=False, description="Delete a sample once the broker acknowledged all of it."
    )

    @field_validator("time_window")
    @classmethod
    def _window_format(cls, value: str | None) -> str | None:
        if value is not None and not _TIME_WINDOW.match(value):
            raise ValueError("time_window is `HH:MM-HH:MM` in 24 h local time, e.g. 22:00-06:00")
        return value


class CaptureSettings(StrictModel):
    """Sampled capture of inputs and outputs to disk, and their upload."""

    enabled: bool = Field(default=False, description="Capture samples.")
    dir: Path | None = Field(
        default=None, description="Sample store folder; default: `<store_dir>/samples`."
    )
    models: list[str] = Field(
        default_factory=list, description="Models to capture from; empty: every served model."
    )
    max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes of payload files kept at most; the oldest samples are dropped "
        "(and counted) beyond it.",
    )
    max_age_s: float | None = Field(
        default=7 * 24 * 3600.0, gt=0.0, description="Samples older than this are dropped."
    )
    queue_size: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Samples waiting for the disk writer; beyond it new ones are dropped "
        "(counted) so inference never waits for the disk.",
    )
    random_rate: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Capture this share of all inferences."
    )
    reservoir: ReservoirSettings | None = Field(
        default=None, description="A fixed-size uniform sample per window."
    )
    low_confidence: LowConfidenceSettings | None = Field(
        default=None, description="Capture uncertain predictions."
    )
    by_class: ByClassSettings | None = Field(
        default=None, description="Capture by predicted class."
    )
    on_drift: DriftCaptureSettings | None = Field(
        default_factory=DriftCaptureSettings,
        description="Capture while a drift alarm is raised (unset: off).",
    )
    on_demand_max: int = Field(
        default=1000,
        ge=0,
        description="Largest `sample-now` request honoured (0: on-demand capture off).",
    )
    scores_output: str | None = Field(
        default=None,
        description="Output holding class scores for the confidence and class strategies; "
        "default: the first output.",
    )
    upload: UploadSettings = Field(default_factory=UploadSettings, description="Upload.")
