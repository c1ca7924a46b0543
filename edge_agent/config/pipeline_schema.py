"""Config of pipelines (``pipelines:``): source -> preprocess -> model -> postprocess -> sinks.

Same rules as the rest of the schema: unknown keys are errors and every field has a description.
Sources (:mod:`~edge_agent.config.sources_schema`), postprocessors
(:mod:`~edge_agent.config.postprocess_schema`) and sinks are discriminated unions keyed by
``type``. The agent config holds them as ``pipelines: list[PipelineSettings]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from edge_agent.config.base import StrictModel
from edge_agent.config.postprocess_schema import PostprocessSettings, RawPost
from edge_agent.config.sources_schema import SourceSettings
from edge_agent.names import PipelineName, ServedName

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

    name: PipelineName = Field(description="Pipeline name (results topic, metrics).")
    model: ServedName = Field(description="Name of a served model (from `models:`).")
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
