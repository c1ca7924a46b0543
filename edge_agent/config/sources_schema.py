"""Config of pipeline sources (``pipelines[].source``): camera, video, RTSP, folder, MQTT.

A discriminated union keyed by ``type``, so a typo in ``type`` names the allowed kinds and every
kind accepts only its own keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.config.base import StrictModel


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
