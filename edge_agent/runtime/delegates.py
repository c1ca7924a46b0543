"""Which delegate / execution provider to try, in which order: pure decisions, no runtime.

The backends turn a ``DelegatePlan`` into real attempts; everything here takes data (the
preferences from the device config, what the installed runtime offers, the failure policy) and
returns data, so it is unit-tested without any runtime installed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from edge_agent.config import (
    DelegateFailurePolicy,
    LiteRTDelegate,
    OnnxProvider,
    RuntimeSettings,
)
from edge_agent.errors import DelegateError
from edge_agent.runtime.base import SkippedDelegate

ORT_PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "acl": "ACLExecutionProvider",
    "armnn": "ArmNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "azure": "AzureExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
"""Canonical provider name (as written in device configs) -> ONNX Runtime's name."""

ORT_CANONICAL: dict[str, str] = {ort: name for name, ort in ORT_PROVIDERS.items()}

LITERT_DEFAULT_LIBRARIES: dict[str, str] = {
    "edgetpu": "libedgetpu.so.1",
    "gpu": "libtensorflowlite_gpu_delegate.so",
}
"""Delegate libraries loaded when a device config names the delegate without `library:`."""


@dataclass(frozen=True)
class Attempt:
    """One way to bind the model, tried in plan order."""

    name: str
    """Canonical name of the delegate or provider this attempt is for."""
    target: str = ""
    """LiteRT: the delegate library ('' for built-ins). ORT: the provider's runtime name."""
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DelegatePlan:
    """The attempts to make, in order, and the preferences dropped before trying."""

    attempts: tuple[Attempt, ...]
    skipped: tuple[SkippedDelegate, ...] = ()


def plan_litert(
    preferences: Sequence[LiteRTDelegate], policy: DelegateFailurePolicy
) -> DelegatePlan:
    """Order the LiteRT delegates to try; `cpu` closes the list unless the policy is `fail`.

    Whether a delegate library loads is only known by loading it, so nothing is skipped here.
    """
    attempts = [
        Attempt(
            name=pref.name,
            target=pref.library or LITERT_DEFAULT_LIBRARIES.get(pref.name, ""),
            options=_stringify(pref.options),
        )
        for pref in preferences
    ]
    return DelegatePlan(attempts=_finish(attempts, policy, Attempt(name="cpu")))


def plan_onnx(
    preferences: Sequence[OnnxProvider],
    available: Collection[str],
    policy: DelegateFailurePolicy,
) -> DelegatePlan:
    """Order the ORT providers to try, keeping only those this onnxruntime build has.

    ``available`` is ``onnxruntime.get_available_providers()``. Under the `fail` policy a
    missing first preference is an error, since nothing but it may run the model.
    """
    attempts: list[Attempt] = []
    skipped: list[SkippedDelegate] = []
    for pref in preferences:
        ort_name = ORT_PROVIDERS[pref.name]
        if ort_name in available:
            attempts.append(Attempt(pref.name, ort_name, _stringify(pref.options)))
        else:
            skipped.append(
                SkippedDelegate(
                    pref.name,
                    f"{ort_name} is not in this onnxruntime "
                    f"build (it has: {', '.join(available) or 'none'})",
                )
            )
    if policy == "fail" and (not attempts or attempts[0].name != preferences[0].name):
        raise DelegateError(
            f"on_delegate_failure is 'fail' and the first preference "
            f"'{preferences[0].name}' is not available: {skipped[0].reason}. Install an "
            "onnxruntime build with it (e.g. onnxruntime-gpu) or set on_delegate_failure: "
            "fallback"
        )
    cpu = Attempt("cpu", ORT_PROVIDERS["cpu"])
    return DelegatePlan(attempts=_finish(attempts, policy, cpu), skipped=tuple(skipped))


def ort_provider_chain(plan: DelegatePlan, start: int) -> list[tuple[str, dict[str, str]]]:
    """Providers for the session of attempt ``start``: it and every later one, CPU last.

    ONNX Runtime assigns each node to the first provider in the list that supports it, so the
    rest of the chain catches what the preferred provider cannot run.
    """
    return [(a.target, dict(a.options)) for a in plan.attempts[start:]]


def count_placement(node_providers: Iterable[str]) -> dict[str, int]:
    """Node count per canonical provider name, from the provider of each executed node."""
    counts: dict[str, int] = {}
    for provider in node_providers:
        name = ORT_CANONICAL.get(provider, provider)
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def primary_provider(placement: Mapping[str, int] | None, chain: Sequence[str]) -> str:
    """The provider actually doing the work: the first in the chain that took any node."""
    for ort_name in chain:
        name = ORT_CANONICAL.get(ort_name, ort_name)
        if placement is None or placement.get(name, 0) > 0:
            return name
    return ORT_CANONICAL.get(chain[-1], chain[-1]) if chain else "cpu"


def _finish(
    attempts: list[Attempt], policy: DelegateFailurePolicy, cpu: Attempt
) -> tuple[Attempt, ...]:
    if policy == "fail":
        return tuple(attempts[:1])
    unique: list[Attempt] = []
    for attempt in attempts:
        if all(attempt.name != seen.name or attempt.target != seen.target for seen in unique):
            unique.append(attempt)
    if not any(a.name == "cpu" for a in unique):
        unique.append(cpu)
    # Nothing is tried after CPU: it is the floor every device has.
    cpu_index = next(i for i, a in enumerate(unique) if a.name == "cpu")
    return tuple(unique[: cpu_index + 1])


def _stringify(options: Mapping[str, object]) -> dict[str, str]:
    """Delegate and provider options travel as strings (booleans as 'true' / 'false')."""
    return {
        key: (str(value).lower() if isinstance(value, bool) else str(value))
        for key, value in options.items()
    }


def demote(settings: RuntimeSettings, model_format: str, crashed: str) -> RuntimeSettings:
    """Settings whose preference list starts after the delegate that ``crashed``.

    Used after repeated native crashes: the next worker must not bind the same delegate again.
    CPU is the floor (a crash on CPU leaves the list at CPU).
    """
    demoted = settings.model_copy(deep=True)
    demoted.on_delegate_failure = "fallback"
    if model_format == "tflite":
        delegates = settings.litert.delegates
        names = [d.name for d in delegates]
        after = delegates[names.index(crashed) + 1 :] if crashed in names else []
        demoted.litert.delegates = after or [LiteRTDelegate(name="cpu")]
    else:
        providers = settings.onnx.providers
        provider_names = [p.name for p in providers]
        rest = providers[provider_names.index(crashed) + 1 :] if crashed in provider_names else []
        demoted.onnx.providers = rest or [OnnxProvider(name="cpu")]
    return demoted
