"""The agent config: one device's agent, assembled from the schema parts of each concern.

Two documents share these models:

* a **device config** (``device_configs/<class>.yaml``) describes a class of hardware: threads,
  the delegate / execution-provider preference order and where its sensors live;
* an **agent config** (``edge-agent run --config FILE``) describes one device: its id, which device
  config applies, the models it serves and how it reaches the broker.

Every model forbids unknown keys (a typo must never be silently ignored) and every field has a
description, which is also where ``docs/config-reference.md`` comes from.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from edge_agent.config.base import StrictModel
from edge_agent.config.broker_schema import BrokerSettings
from edge_agent.config.capture_schema import CaptureSettings
from edge_agent.config.delivery_schema import ModelDeliverySettings
from edge_agent.config.link_schema import LinkSettings
from edge_agent.config.pipeline_schema import PipelineSettings
from edge_agent.config.runtime_schema import RuntimeSettings
from edge_agent.config.serving_schema import ServingSettings
from edge_agent.config.telemetry_schema import TelemetrySettings
from edge_agent.names import DeviceId, ServedName


class ModelEntry(StrictModel):
    """A model the agent serves from a local file (models from the registry come later)."""

    name: ServedName = Field(
        description="Name the model is served and reported under.",
    )
    path: Path = Field(description="Path of the `.tflite` or `.onnx` file.")
    profile: Path | None = Field(
        default=None,
        description="Reference profile for drift detection (`edge-agent convert profile`; "
        "built from held-out data, not the training set). No drift detection without it.",
    )
    serve: bool = Field(
        default=True,
        description="Serve it under its name (loaded at start-up). `false`: only a file the "
        "power policy's `light_variant` names, loaded when it is swapped in, so it is not kept "
        "in memory twice; no pipeline may use it.",
    )


class ApiSettings(StrictModel):
    """The local inference API (Open Inference Protocol)."""

    listen: str = Field(
        default="127.0.0.1:8080",
        pattern=r"^(unix:/\S+|[^\s:]+:\d{1,5})$",
        description="`HOST:PORT` (keep it on 127.0.0.1 unless fronted by a proxy) or "
        "`unix:/run/edge-agent/api.sock`.",
    )
    max_connections: int = Field(
        default=32,
        ge=1,
        le=4096,
        description="Open connections served at once (one request in flight each); more are "
        "answered 503 with Retry-After and closed, so no client can take every thread.",
    )
    idle_timeout_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="A connection that sends nothing (between requests, or in the middle of "
        "one) for this long is closed.",
    )
    max_body_bytes: int = Field(
        default=64 << 20,
        ge=1024,
        description="Largest request body with binary tensor data (413 above it).",
    )
    max_json_body_bytes: int = Field(
        default=8 << 20,
        ge=1024,
        description="Largest all-JSON request body (413 above it). Decoding JSON numbers takes "
        "up to sixteen times the body in memory; bodies decoded at once share this many bytes "
        "between them (the rest wait, 503 after idle_timeout_s), so the decode peak stays "
        "about sixteen times this value. Big tensors should use the binary extension.",
    )


class AgentConfig(StrictModel):
    """One device's agent (`edge-agent run --config FILE`)."""

    device_id: DeviceId = Field(
        description="Unique id of this device; used in MQTT topics, so no `/`, `+` or `#`.",
    )
    device: str = Field(
        default="auto",
        description="Device config: the name of a shipped one (`rpi5`, `jetson-orin-nano`, ...), "
        "a path to a YAML file, or `auto` to detect the hardware.",
    )
    runtime: RuntimeSettings | None = Field(
        default=None,
        description="Replaces the device config's `runtime:` section for this device when set.",
    )
    store_dir: Path = Field(
        default=Path("/var/lib/edge-agent"),
        description="Where models, the outbox and sampled data are kept.",
    )
    models: list[ModelEntry] = Field(default_factory=list, description="Models to serve.")
    broker: BrokerSettings | None = Field(
        default=None, description="MQTT broker; without it the agent runs offline."
    )
    api: ApiSettings = Field(default_factory=ApiSettings, description="Local inference API.")
    telemetry: TelemetrySettings = Field(
        default_factory=TelemetrySettings,
        description="Telemetry, drift detection, outbox and power policy.",
    )
    serving: ServingSettings = Field(
        default_factory=ServingSettings,
        description="Process isolation, hot-swap health gates and the watchdog.",
    )
    pipelines: list[PipelineSettings] = Field(
        default_factory=list,
        description="Pipelines: source -> preprocess -> model -> postprocess -> sinks.",
    )
    capture: CaptureSettings = Field(
        default_factory=CaptureSettings,
        description="Sampled capture of inputs and outputs, and their upload.",
    )
    registry: ModelDeliverySettings | None = Field(
        default=None,
        description="Follow the signed model registry for some models (needs `broker`).",
    )
    link: LinkSettings = Field(
        default_factory=LinkSettings,
        description="Budget of a metered link: a rate cap and time windows shared by model "
        "downloads and sample uploads.",
    )

    @model_validator(mode="after")
    def _registry_needs_a_broker(self) -> AgentConfig:
        if self.registry is not None and self.broker is None:
            raise ValueError("`registry` delivers models over MQTT: set `broker` too")
        return self

    @model_validator(mode="after")
    def _pipelines_name_known_models(self) -> AgentConfig:
        known = {m.name for m in self.models if m.serve}
        known |= set(self.registry.models if self.registry else [])
        unserved = {m.name for m in self.models if not m.serve}
        for pipeline in self.pipelines:
            if pipeline.model in unserved:
                raise ValueError(
                    f"pipeline '{pipeline.name}' uses model '{pipeline.model}', which has "
                    "`serve: false` (only a light variant may)"
                )
            if pipeline.model not in known:
                raise ValueError(
                    f"pipeline '{pipeline.name}' uses model '{pipeline.model}', which is neither "
                    f"under `models:` nor followed under `registry.models` "
                    f"(known: {', '.join(sorted(known)) or 'none'})"
                )
        return self

    @field_validator("pipelines")
    @classmethod
    def _unique_pipeline_names(cls, pipelines: list[PipelineSettings]) -> list[PipelineSettings]:
        _require_unique([p.name for p in pipelines], "pipeline")
        return pipelines

    @field_validator("models")
    @classmethod
    def _unique_model_names(cls, models: list[ModelEntry]) -> list[ModelEntry]:
        _require_unique([m.name for m in models], "model")
        return models


def _require_unique(names: list[str], what: str) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(duplicates)}")
