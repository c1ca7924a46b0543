"""Typed configuration: the schema, YAML loading with located errors, device configs.

The face of the package: everything outside ``edge_agent.config`` imports settings classes from
here. The schema is split by concern (one ``*_schema.py`` module per config section), which is an
internal layout other packages need not know.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.config.agent_schema import (
    AgentConfig,
    ApiSettings,
    ModelEntry,
)
from edge_agent.config.broker_schema import BrokerSettings
from edge_agent.config.capture_schema import (
    ByClassSettings,
    CaptureSettings,
    DriftCaptureSettings,
    LowConfidenceSettings,
    ReservoirSettings,
    UploadSettings,
)
from edge_agent.config.delivery_schema import FetchSettings, ModelDeliverySettings
from edge_agent.config.device_schema import (
    DeviceConfig,
    HwmonRail,
    SensorSettings,
)
from edge_agent.config.devices import (
    detect_device_class,
    detect_this_device,
    resolve_device_config,
    shipped_device_configs,
)
from edge_agent.config.link_schema import LinkSettings
from edge_agent.config.loader import load_model, read_yaml, validate
from edge_agent.config.pipeline_schema import (
    JsonlSink,
    MqttSink,
    PipelineSettings,
    PreprocessSettings,
    SinkSettings,
)
from edge_agent.config.postprocess_schema import (
    ClassificationPost,
    NmsSettings,
    PostprocessSettings,
    RawPost,
    SegmentationPost,
    SsdPost,
    YoloPost,
)
from edge_agent.config.runtime_schema import (
    DelegateFailurePolicy,
    GraphOptimization,
    LiteRTDelegate,
    LiteRTDelegateName,
    LiteRTSettings,
    OnnxProvider,
    OnnxProviderName,
    OnnxSettings,
    OptionValue,
    RuntimeSettings,
)
from edge_agent.config.serving_schema import (
    BatchingSettings,
    ServingSettings,
    SwapGateSettings,
)
from edge_agent.config.sources_schema import (
    CameraSource,
    FolderSource,
    MqttSource,
    ReconnectSettings,
    RtspSource,
    SourceSettings,
    VideoSource,
)
from edge_agent.config.telemetry_schema import (
    DriftSettings,
    DriftThresholds,
    LatencySettings,
    OutboxSettings,
    OutboxSynchronous,
    PowerPolicySettings,
    TelemetrySettings,
)
from edge_agent.errors import ConfigError

__all__ = [
    "AgentConfig",
    "ApiSettings",
    "BatchingSettings",
    "BrokerSettings",
    "ByClassSettings",
    "CameraSource",
    "CaptureSettings",
    "ClassificationPost",
    "DelegateFailurePolicy",
    "DeviceConfig",
    "DriftCaptureSettings",
    "DriftSettings",
    "DriftThresholds",
    "FetchSettings",
    "FolderSource",
    "GraphOptimization",
    "HwmonRail",
    "JsonlSink",
    "LatencySettings",
    "LinkSettings",
    "LiteRTDelegate",
    "LiteRTDelegateName",
    "LiteRTSettings",
    "LowConfidenceSettings",
    "ModelDeliverySettings",
    "ModelEntry",
    "MqttSink",
    "MqttSource",
    "NmsSettings",
    "OnnxProvider",
    "OnnxProviderName",
    "OnnxSettings",
    "OptionValue",
    "OutboxSettings",
    "OutboxSynchronous",
    "PipelineSettings",
    "PostprocessSettings",
    "PowerPolicySettings",
    "PreprocessSettings",
    "RawPost",
    "ReconnectSettings",
    "ReservoirSettings",
    "RtspSource",
    "RuntimeSettings",
    "SegmentationPost",
    "SensorSettings",
    "ServingSettings",
    "SinkSettings",
    "SourceSettings",
    "SsdPost",
    "SwapGateSettings",
    "TelemetrySettings",
    "UploadSettings",
    "VideoSource",
    "YoloPost",
    "check_config_file",
    "detect_device_class",
    "detect_this_device",
    "load_agent_config",
    "load_model",
    "read_yaml",
    "resolve_device_config",
    "shipped_device_configs",
    "validate",
]


def load_agent_config(path: Path) -> AgentConfig:
    """Load an agent config file, then check that its device config resolves too."""
    config = load_model(AgentConfig, path)
    if config.device != "auto":
        reference = config.device
        relative = path.parent / reference
        if reference.endswith((".yaml", ".yml")) and not Path(reference).is_absolute():
            config.device = str(relative)
        resolve_device_config(config.device)
    return config


def check_config_file(path: Path) -> tuple[str, AgentConfig | DeviceConfig]:
    """Validate a file as whichever document it is: a device config has `device_class`."""
    data, _ = read_yaml(path)
    if isinstance(data, dict) and "device_class" in data:
        return "device config", load_model(DeviceConfig, path)
    if isinstance(data, dict) and "device_id" in data:
        return "agent config", load_agent_config(path)
    raise ConfigError(
        f"{path}: cannot tell what this file is: a device config has a `device_class:` key, an "
        "agent config a `device_id:` key"
    )
