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

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OptionValue = str | int | float | bool
"""Delegate / provider options are flat scalars, passed to the runtime as they are."""

LiteRTDelegateName = Literal["edgetpu", "gpu", "xnnpack", "external", "cpu"]
OnnxProviderName = Literal[
    "tensorrt", "cuda", "rocm", "migraphx", "openvino", "dml", "coreml", "qnn", "acl",
    "armnn", "xnnpack", "cpu",
]
DelegateFailurePolicy = Literal["fallback", "fail"]
GraphOptimization = Literal["disable", "basic", "extended", "all"]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


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
        "qnn, acl, armnn, xnnpack or cpu. Providers this onnxruntime build lacks are skipped."
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
        default=None, ge=1, le=256,
        description="Threads running independent graph nodes in parallel (runtime default when "
        "unset).",
    )


class RuntimeSettings(StrictModel):
    """Inference runtime settings shared by both backends."""

    threads: int | None = Field(
        default=None, ge=1, le=256,
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
        default=1, ge=0, le=1000,
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
        default=1, ge=0, le=16,
        description="Channel number N of `inN_input` (mV), `currN_input` (mA), `powerN_input` (uW).",
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
    sensors: SensorSettings = Field(
        default_factory=SensorSettings, description="Sensor locations."
    )


class ModelEntry(StrictModel):
    """A model the agent serves from a local file (models from the registry come later)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Name the model is served and reported under.",
    )
    path: Path = Field(description="Path of the `.tflite` or `.onnx` file.")


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

    @field_validator("models")
    @classmethod
    def _unique_model_names(cls, models: list[ModelEntry]) -> list[ModelEntry]:
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        return models
