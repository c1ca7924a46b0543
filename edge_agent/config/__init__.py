"""Typed configuration: the schema, YAML loading with located errors, device configs."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config.devices import (
    detect_device_class,
    detect_this_device,
    resolve_device_config,
    shipped_device_configs,
)
from edge_agent.config.loader import load_model, read_yaml, validate
from edge_agent.config.schema import (
    AgentConfig,
    DeviceConfig,
    LiteRTDelegate,
    OnnxProvider,
    RuntimeSettings,
    SensorSettings,
)
from edge_agent.errors import ConfigError

__all__ = [
    "AgentConfig",
    "DeviceConfig",
    "LiteRTDelegate",
    "OnnxProvider",
    "RuntimeSettings",
    "SensorSettings",
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
