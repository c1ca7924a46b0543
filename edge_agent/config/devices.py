"""Finding the device config that applies: shipped files, paths, and hardware detection.

Shipped device configs live in the repository's ``device_configs/``; a wheel carries them as
``edge_agent/_device_configs``. ``/etc/edge-agent/device_configs`` may add or override classes.
"""

from __future__ import annotations

import platform
from pathlib import Path

from edge_agent.config.device_schema import DeviceConfig
from edge_agent.config.loader import load_model
from edge_agent.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
SEARCH_DIRS: tuple[Path, ...] = (
    Path("/etc/edge-agent/device_configs"),
    _PACKAGE_DIR / "_device_configs",  # installed from a wheel
    _PACKAGE_DIR.parent / "device_configs",  # a source checkout / editable install
)


def shipped_device_configs(search_dirs: tuple[Path, ...] = SEARCH_DIRS) -> dict[str, Path]:
    """Device class name -> file, earlier search directories winning."""
    found: dict[str, Path] = {}
    for directory in reversed(search_dirs):
        if directory.is_dir():
            for path in sorted(directory.glob("*.yaml")):
                found[path.stem] = path
    return dict(sorted(found.items()))


def detect_device_class(
    device_tree_model: str | None, has_tegra_release: bool, machine: str
) -> str:
    """Pick a shipped device class from what the hardware says about itself (pure).

    ``device_tree_model`` is the text of ``/proc/device-tree/model`` (None when absent),
    ``has_tegra_release`` whether ``/etc/nv_tegra_release`` exists, ``machine`` is ``uname -m``.
    """
    model = (device_tree_model or "").strip("\x00 \n").lower()
    if "raspberry pi 5" in model:
        return "rpi5"
    if "raspberry pi 4" in model:
        return "rpi4"
    if has_tegra_release or "jetson" in model or "nvidia" in model:
        if "orin" in model:
            return "jetson-orin-nano"
        return "jetson-nano" if "nano" in model else "jetson-orin-nano"
    if machine in ("x86_64", "amd64", "AMD64"):
        return "x86-generic"
    return "generic"


def detect_this_device() -> str:
    """Detect the device class of the machine this runs on."""
    model_file = Path("/proc/device-tree/model")
    try:
        model = model_file.read_text(errors="replace") if model_file.exists() else None
    except OSError:
        model = None
    return detect_device_class(model, Path("/etc/nv_tegra_release").exists(), platform.machine())


def resolve_device_config(reference: str) -> tuple[DeviceConfig, str]:
    """Load the device config named by ``reference``: ``auto``, a shipped name or a path.

    Returns the config and where it came from. A detected class without a shipped file gets the
    built-in defaults (XNNPACK / CPU), which run anywhere.
    """
    shipped = shipped_device_configs()
    if reference == "auto":
        detected = detect_this_device()
        if detected in shipped:
            return load_model(DeviceConfig, shipped[detected]), f"{shipped[detected]} (detected)"
        return DeviceConfig(device_class=detected), f"built-in defaults for '{detected}'"
    if reference in shipped:
        return load_model(DeviceConfig, shipped[reference]), str(shipped[reference])
    path = Path(reference)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_model(DeviceConfig, path), str(path)
    raise ConfigError(
        f"unknown device config '{reference}': give a path to a YAML file or one of "
        f"{', '.join(shipped) or '(none shipped)'}, or 'auto'"
    )
