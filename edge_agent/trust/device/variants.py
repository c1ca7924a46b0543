"""Which variant of a release this device installs. Pure decisions over data.

A release may carry several variants of one model (int8 TFLite for a Pi, an Edge TPU build for
Coral, fp16 ONNX for a Jetson, fp32 ONNX for x86), each declaring in its signed manifest the
device classes (``target_devices``) and delegates (``target_delegates``) it is for. A device
describes itself as a :class:`Platform` (its device class, the delegates its device config
prefers, in order, and the model formats whose runtime is installed) and
:func:`choose_variant` picks:

1. only variants it can run: its format's runtime is installed; ``target_devices`` empty or
   naming this class; ``target_delegates`` empty or naming a delegate the config lists;
2. among them, one made for this class before a generic one, then the one whose declared
   delegate comes earliest in the config's preference, then a variant for any CPU.

Targeting is exact: a variant made for other device classes is never installed here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.config import DeviceConfig, RuntimeSettings
from edge_agent.errors import UpdateError
from edge_agent.trust.targets import ModelRelease

_RUNTIME_MODULES = {
    "tflite": ("ai_edge_litert", "tflite_runtime", "tensorflow"),
    "onnx": ("onnxruntime",),
}


@dataclass(frozen=True)
class Platform:
    """What a device is and can run, as far as choosing a variant goes."""

    device_class: str
    delegates: tuple[str, ...]
    """Delegates and execution providers its config prefers, best first."""
    formats: frozenset[str]
    """Model formats (``tflite``, ``onnx``) whose runtime is installed."""


def installed_formats() -> frozenset[str]:
    """The model formats whose runtime can be imported here (nothing is imported)."""
    return frozenset(
        fmt
        for fmt, modules in _RUNTIME_MODULES.items()
        if any(importlib.util.find_spec(module) is not None for module in modules)
    )


def platform_of(device: DeviceConfig, runtime: RuntimeSettings | None = None) -> Platform:
    """A device's platform from its device config (and the agent's runtime override)."""
    settings = runtime or device.runtime
    delegates: list[str] = [d.name for d in settings.litert.delegates]
    delegates += [p.name for p in settings.onnx.providers if p.name not in delegates]
    return Platform(device.device_class, tuple(delegates), installed_formats())


def why_not(variant: ModelRelease, platform: Platform) -> str | None:
    """Why ``platform`` cannot take ``variant`` (None when it can)."""
    manifest = variant.manifest
    fmt = str(manifest.get("format") or variant.filename.rsplit(".", 1)[-1])
    if fmt not in platform.formats:
        return f"no {fmt} runtime installed"
    devices = [str(d) for d in manifest.get("target_devices") or []]
    if devices and platform.device_class not in devices:
        return f"made for {', '.join(devices)}"
    delegates = [str(d) for d in manifest.get("target_delegates") or []]
    if delegates and not set(delegates) & set(platform.delegates):
        return f"needs {' or '.join(delegates)}, not in this device's config"
    return None


def choose_variant(variants: Sequence[ModelRelease], platform: Platform) -> ModelRelease:
    """The variant of one release that ``platform`` runs best; UpdateError if none fits."""
    fitting = [v for v in variants if why_not(v, platform) is None]
    if not fitting:
        reasons = "; ".join(f"{v.filename}: {why_not(v, platform)}" for v in variants)
        raise UpdateError(
            f"no variant of {variants[0].name} release {variants[0].release} fits this "
            f"{platform.device_class} device ({reasons})"
            if variants
            else "no variants"
        )

    def rank(variant: ModelRelease) -> tuple[int, int, str]:
        manifest = variant.manifest
        for_this_class = platform.device_class in (manifest.get("target_devices") or [])
        declared = [str(d) for d in manifest.get("target_delegates") or []]
        positions = [platform.delegates.index(d) for d in declared if d in platform.delegates]
        delegate_rank = min(positions) if positions else len(platform.delegates)
        return (0 if for_this_class else 1, delegate_rank, variant.filename)

    return min(fitting, key=rank)


def describe(variant: ModelRelease) -> str:
    """``digits_int8.tflite (for rpi5; edgetpu)``: which variant, for the log and status."""
    manifest = variant.manifest
    notes = [", ".join(manifest.get("target_devices") or []) or "any device"]
    notes += [", ".join(manifest.get("target_delegates") or [])]
    return f"{variant.filename} (for {'; '.join(n for n in notes if n)})"
