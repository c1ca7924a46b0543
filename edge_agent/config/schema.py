"""The config schema: one place for every key the agent and the device configs accept.

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
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.config.base import StrictModel
from edge_agent.config.delivery_schema import ModelDeliverySettings
from edge_agent.config.pipeline_schema import CaptureSettings, PipelineSettings
from edge_agent.config.serving_schema import ServingSettings

OptionValue = str | int | float | bool
"""Delegate / provider options are flat scalars, passed to the runtime as they are."""

LiteRTDelegateName = Literal["edgetpu", "gpu", "xnnpack", "external", "cpu"]
OnnxProviderName = Literal[
    "tensorrt",
    "cuda",
    "rocm",
    "migraphx",
    "openvino",
    "dml",
    "coreml",
    "qnn",
    "acl",
    "armnn",
    "xnnpack",
    "azure",
    "cpu",
]
DelegateFailurePolicy = Literal["fallback", "fail"]
GraphOptimization = Literal["disable", "basic", "extended", "all"]


class LiteRTDelegate(StrictModel):
    """One entry of the LiteRT delegate preference order."""

    name: LiteRTDelegateName = Field(
        description="Delegate kind: `edgetpu` (Coral, libedgetpu), `gpu` (TFLite GPU delegate), "
        "`xnnpack` (LiteRT's built-in optimized CPU kernels), `external` (any delegate `.so` "
        "given by `library`), `cpu` (reference kernels, no delegate)."
    )
    library: str | None = Field(
        default=None,
        description="Shared library to load: a soname found by the dynamic loader or an absolute "
        "path. Defaults: edgetpu -> `libedgetpu.so.1`, gpu -> "
        "`libtensorflowlite_gpu_delegate.so`. Required for `external`.",
    )
    options: dict[str, OptionValue] = Field(
        default_factory=dict,
        description="Options passed to the delegate as strings (e.g. edgetpu `device: usb:0`).",
    )

    @model_validator(mode="after")
    def _library_where_needed(self) -> LiteRTDelegate:
        if self.name == "external" and not self.library:
            raise ValueError("an `external` delegate needs `library:` (path of the delegate .so)")
        if self.name in ("xnnpack", "cpu") and self.library:
            raise ValueError(f"`{self.name}` is built into LiteRT and takes no `library:`")
        return self


class OnnxProvider(StrictModel):
    """One entry of the ONNX Runtime execution-provider preference order."""

    name: OnnxProviderName = Field(
        description="Execution provider: tensorrt, cuda, rocm, migraphx, openvino, dml, coreml, "
        "qnn, acl, armnn, xnnpack, azure or cpu. Providers this onnxruntime build lacks are "
        "skipped."
    )
    options: dict[str, OptionValue] = Field(
        default_factory=dict,
        description="Provider options, passed as they are (e.g. tensorrt "
        "`trt_engine_cache_enable: true`, `trt_engine_cache_path: /var/cache/edge-agent/trt`).",
    )


def _default_litert_delegates() -> list[LiteRTDelegate]:
    return [LiteRTDelegate(name="xnnpack"), LiteRTDelegate(name="cpu")]


def _default_onnx_providers() -> list[OnnxProvider]:
    return [OnnxProvider(name="cpu")]


class LiteRTSettings(StrictModel):
    """How `.tflite` models run."""

    delegates: list[LiteRTDelegate] = Field(
        default_factory=_default_litert_delegates,
        min_length=1,
        description="Delegates in order of preference; the first that loads and runs is used. "
        "`cpu` is always tried last even when not listed (unless the failure policy is `fail`).",
    )


class OnnxSettings(StrictModel):
    """How `.onnx` models run."""

    providers: list[OnnxProvider] = Field(
        default_factory=_default_onnx_providers,
        min_length=1,
        description="Execution providers in order of preference; `cpu` is always the last "
        "resort even when not listed (unless the failure policy is `fail`).",
    )
    graph_optimization: GraphOptimization = Field(
        default="all", description="ONNX Runtime graph optimization level."
    )
    optimized_model_dir: Path | None = Field(
        default=None,
        description="Directory where the optimized graph is cached per model "
        "(`<model stem>.<provider>.opt.onnx`), so later starts skip optimization. Off when unset.",
    )
    inter_op_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Threads running independent graph nodes in parallel (runtime default when "
        "unset).",
    )


class RuntimeSettings(StrictModel):
    """Inference runtime settings shared by both backends."""

    threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Threads for one inference (LiteRT num_threads, ORT intra-op threads). "
        "Unset: the runtime's default (usually the number of cores).",
    )
    on_delegate_failure: DelegateFailurePolicy = Field(
        default="fallback",
        description="`fallback`: a delegate that is missing or fails to load or run is skipped, "
        "down to CPU, and the reason is logged and reported. `fail`: only the first preference "
        "may be used; if it cannot, loading fails with the reason.",
    )
    warmup_runs: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Inferences on zero inputs right after loading, so that lazy delegate "
        "compilation happens before real traffic and a delegate that cannot run is caught early.",
    )
    litert: LiteRTSettings = Field(default_factory=LiteRTSettings, description="LiteRT settings.")
    onnx: OnnxSettings = Field(default_factory=OnnxSettings, description="ONNX Runtime settings.")


class HwmonRail(StrictModel):
    """A power rail measured by an hwmon driver (INA219 on UPS HATs, INA3221 on Jetson)."""

    name: str = Field(description="Name reported in telemetry, e.g. `VDD_IN` or `ups`.")
    hwmon: str = Field(
        description="Glob of the hwmon directory, e.g. "
        "`/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon*`."
    )
    channel: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Channel number N of `inN_input` (mV), `currN_input` (mA), "
        "`powerN_input` (uW).",
    )


class SensorSettings(StrictModel):
    """Where the system sensors of this device class live. Every path may be absent."""

    thermal_zones: list[str] = Field(
        default_factory=lambda: ["/sys/class/thermal/thermal_zone*"],
        description="Globs of thermal zone directories (each has `type` and `temp` in m°C).",
    )
    power_supplies: list[str] = Field(
        default_factory=lambda: ["/sys/class/power_supply/*"],
        description="Globs of Linux power_supply directories (battery, UPS, mains).",
    )
    power_rails: list[HwmonRail] = Field(
        default_factory=list, description="hwmon power rails to read (voltage, current, power)."
    )
    rpi_throttled: str | None = Field(
        default=None,
        description="Raspberry Pi firmware throttling flags file (under-voltage, throttled, "
        "frequency capped), e.g. `/sys/devices/platform/soc/soc:firmware/get_throttled`.",
    )


OutboxSynchronous = Literal["full", "normal"]


class LatencySettings(StrictModel):
    """Latency and load telemetry (per model and delegate)."""

    relative_accuracy: float = Field(
        default=0.01,
        gt=0.0,
        lt=0.5,
        description="DDSketch relative accuracy of latency quantiles (0.01: p99 within 1%).",
    )
    report_interval_s: float = Field(
        default=60.0,
        ge=1.0,
        le=86400.0,
        description="Seconds between telemetry reports (latency, throughput, sensors).",
    )


class DriftThresholds(StrictModel):
    """When a window statistic counts as drift.

    A feature drifts when any of its statistics crosses its threshold; an alarm clears when
    every statistic is below threshold x `clear_ratio`.
    """

    psi: float = Field(
        default=0.25,
        gt=0.0,
        description="Population stability index per feature (0.1 slight, 0.25 significant).",
    )
    ks: float = Field(
        default=1.95,
        gt=0.0,
        description="Kolmogorov-Smirnov coefficient c: a feature drifts when KS > c x "
        "sqrt((n+m)/(n m)) for window size n and reference size m (1.95: alpha about 0.001).",
    )
    wasserstein: float = Field(
        default=0.5,
        gt=0.0,
        description="Wasserstein-1 distance in units of the reference feature's std.",
    )
    prediction_psi: float = Field(
        default=0.25,
        gt=0.0,
        description="PSI of the predicted-class distribution and of the confidence histogram.",
    )
    nan_rate: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Share of samples with NaN/inf values."
    )
    out_of_range_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of samples with values outside the reference value range.",
    )
    constant_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of constant samples (every value equal: blank or frozen frames).",
    )
    min_features: int = Field(
        default=1,
        ge=1,
        description="Input drift needs at least this many features drifting in a window.",
    )


class DriftSettings(StrictModel):
    """Drift detection windows, thresholds and hysteresis (computed off the hot path)."""

    enabled: bool = Field(default=True, description="Profile windows and detect drift.")
    sample_rate: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Share of inferences whose inputs/outputs join drift windows.",
    )
    window_size: int = Field(
        default=200, ge=10, le=1_000_000, description="Samples per window (count window)."
    )
    window_s: float = Field(
        default=600.0,
        gt=0.0,
        description="A window also closes after this many seconds if it has `min_window` samples.",
    )
    min_window: int = Field(
        default=50, ge=1, description="Fewer samples than this never make a window."
    )
    queue_max: int = Field(
        default=1024,
        ge=1,
        description="Samples waiting for the drift worker; beyond it samples are dropped "
        "(counted), so the hot path never waits.",
    )
    raise_after: int = Field(
        default=2, ge=1, description="Consecutive drifting windows that raise an alarm."
    )
    clear_after: int = Field(
        default=2, ge=1, description="Consecutive calm windows that clear an alarm."
    )
    clear_ratio: float = Field(
        default=0.7,
        gt=0.0,
        le=1.0,
        description="A window is calm when every statistic is below threshold x this ratio.",
    )
    thresholds: DriftThresholds = Field(
        default_factory=DriftThresholds, description="Per-statistic thresholds."
    )


class OutboxSettings(StrictModel):
    """The on-disk store-and-forward queue (SQLite, WAL) in front of MQTT."""

    max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=64 * 1024,
        description="Payload bytes kept at most; beyond it the oldest records of the lowest "
        "priority are dropped (and counted).",
    )
    synchronous: OutboxSynchronous = Field(
        default="full",
        description="SQLite `synchronous` with WAL. `full`: a record acknowledged as queued "
        "survives kill -9 and power loss (one fsync per commit). `normal`: survives kill -9; "
        "power loss may lose the last commits (never corrupts the file).",
    )
    inflight: int = Field(
        default=64,
        ge=1,
        le=65535,
        description="QoS 1 publishes awaiting PUBACK at once.",
    )
    batch: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Records read from the outbox per step; smaller lets fresh "
        "high-priority records overtake a backlog sooner.",
    )


class PowerPolicySettings(StrictModel):
    """Battery / temperature driven throttling, with hysteresis."""

    enabled: bool = Field(default=False, description="Apply the power-aware policy.")
    battery_low_pct: float = Field(
        default=25.0,
        ge=0.0,
        le=100.0,
        description="At or below this battery % (while discharging) enter the saving mode.",
    )
    battery_recover_pct: float = Field(
        default=35.0,
        ge=0.0,
        le=100.0,
        description="Leave the battery saving mode at or above this % (or when charging).",
    )
    temp_high_c: float = Field(
        default=80.0, description="At or above this temperature (°C, hottest zone) throttle."
    )
    temp_recover_c: float = Field(
        default=70.0, description="Leave thermal throttling at or below this temperature (°C)."
    )
    normal_fps: float | None = Field(
        default=None, gt=0.0, description="Frame rate in normal mode (unset: unlimited)."
    )
    reduced_fps: float | None = Field(
        default=None, gt=0.0, description="Frame rate while saving/throttling (unset: keep)."
    )
    light_variant: str | None = Field(
        default=None,
        description="Name of a lighter model (from `models:`) to switch to while saving or "
        "throttling (unset: keep the model).",
    )

    @model_validator(mode="after")
    def _hysteresis_bands(self) -> PowerPolicySettings:
        if self.battery_recover_pct < self.battery_low_pct:
            raise ValueError("battery_recover_pct must be >= battery_low_pct (hysteresis)")
        if self.temp_recover_c > self.temp_high_c:
            raise ValueError("temp_recover_c must be <= temp_high_c (hysteresis)")
        return self


class TelemetrySettings(StrictModel):
    """Telemetry, drift detection, the outbox and the power policy."""

    latency: LatencySettings = Field(
        default_factory=LatencySettings, description="Latency and load telemetry."
    )
    drift: DriftSettings = Field(default_factory=DriftSettings, description="Drift detection.")
    outbox: OutboxSettings = Field(
        default_factory=OutboxSettings, description="Store-and-forward outbox."
    )
    power: PowerPolicySettings = Field(
        default_factory=PowerPolicySettings, description="Power-aware policy."
    )


class DeviceConfig(StrictModel):
    """A class of hardware (`device_configs/<class>.yaml`)."""

    device_class: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$",
        description="Short name of the hardware class, e.g. `rpi5-coral`; used in rollout groups.",
    )
    description: str = Field(default="", description="What hardware and OS this file is for.")
    runtime: RuntimeSettings = Field(
        default_factory=RuntimeSettings, description="Inference runtime settings."
    )
    sensors: SensorSettings = Field(default_factory=SensorSettings, description="Sensor locations.")


class ModelEntry(StrictModel):
    """A model the agent serves from a local file (models from the registry come later)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Name the model is served and reported under.",
    )
    path: Path = Field(description="Path of the `.tflite` or `.onnx` file.")
    profile: Path | None = Field(
        default=None,
        description="Reference profile for drift detection (`edge-agent convert profile`; "
        "built from held-out data, not the training set). No drift detection without it.",
    )


class BrokerSettings(StrictModel):
    """How the agent reaches its MQTT broker."""

    url: str = Field(
        pattern=r"^mqtts?://[^/\s]+(:\d+)?/?$",
        description="`mqtt://host:1883` or `mqtts://host:8883` (TLS).",
    )
    username: str | None = Field(default=None, description="MQTT username (per device).")
    password_file: Path | None = Field(
        default=None, description="File holding the MQTT password (keep it out of this file)."
    )
    ca_file: Path | None = Field(default=None, description="CA bundle that signed the broker.")
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(default=None, description="Client private key (mutual TLS).")
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive (seconds).")
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version. 5 resumes the device's session after an outage (commands "
        "queued by the broker arrive); 3.1.1 for brokers without v5.",
    )
    session_expiry_s: int = Field(
        default=3600,
        ge=0,
        le=7 * 86400,
        description="MQTT v5: how long the broker keeps this device's session (subscriptions "
        "and queued QoS 1 messages) while it is offline; 0 starts clean every time.",
    )


class ApiSettings(StrictModel):
    """The local inference API (Open Inference Protocol)."""

    listen: str = Field(
        default="127.0.0.1:8080",
        pattern=r"^(unix:/\S+|[^\s:]+:\d{1,5})$",
        description="`HOST:PORT` (keep it on 127.0.0.1 unless fronted by a proxy) or "
        "`unix:/run/edge-agent/api.sock`.",
    )


class AgentConfig(StrictModel):
    """One device's agent (`edge-agent run --config FILE`)."""

    device_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
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

    @model_validator(mode="after")
    def _registry_needs_a_broker(self) -> AgentConfig:
        if self.registry is not None and self.broker is None:
            raise ValueError("`registry` delivers models over MQTT: set `broker` too")
        return self

    @model_validator(mode="after")
    def _pipelines_name_known_models(self) -> AgentConfig:
        known = {m.name for m in self.models} | set(self.registry.models if self.registry else [])
        for pipeline in self.pipelines:
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
