"""`convert auto`'s decisions, as pure functions: which recipes a device class can run, which wins.

Nothing here runs a model. :data:`TARGETS` says, per device class (``device_configs/*.yaml``),
which recipes its delegates can execute and why the others are left out; :func:`choose` takes
what was measured for every candidate and returns the winner with a reason for each loser.
The rule: among candidates that passed every gate, the smallest file within a latency budget
(``objective="smallest"``), or the fastest within a size budget (``objective="fastest"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edge_agent.errors import InputError

Objective = Literal["smallest", "fastest"]

ONNX_RECIPES = (
    "onnx_fp16",
    "onnx_dynamic_int8",
    "onnx_qdq_per_channel",
    "onnx_qdq_per_tensor",
    "onnx_qdq_per_channel_nopre",
    "onnx_qdq_per_tensor_nopre",
)
"""Through onnxruntime: float16 weights; dynamic int8; static QDQ int8 (with / without
quant_pre_process)."""
TFLITE_RECIPES = ("tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_full_int8")
"""Through onnx2tf (one run makes all five): float32, float16 weights, dynamic range, int8 with
float input/output, full integer."""
RECIPES = ONNX_RECIPES + TFLITE_RECIPES


@dataclass(frozen=True)
class Target:
    """What a device class can run; recipes outside ``recipes`` are skipped, with ``why``."""

    recipes: tuple[str, ...]
    why: str


TARGETS: dict[str, Target] = {
    "rpi4": Target(RECIPES, "ARM CPU: LiteRT with XNNPACK and ONNX Runtime's CPU kernels"),
    "rpi5": Target(RECIPES, "ARM CPU: LiteRT with XNNPACK and ONNX Runtime's CPU kernels"),
    "rpi5-coral": Target(
        ("tflite_full_int8",),
        "the Edge TPU executes only full-integer TFLite (compile it with edgetpu_compiler)",
    ),
    "jetson-nano": Target(
        ("onnx_fp16", *ONNX_RECIPES[2:], "tflite_fp16"),
        "TensorRT builds engines from float16 or QDQ ONNX; it has no dynamic quantization",
    ),
    "jetson-orin-nano": Target(
        ("onnx_fp16", *ONNX_RECIPES[2:], "tflite_fp16"),
        "TensorRT builds engines from float16 or QDQ ONNX; it has no dynamic quantization",
    ),
    "x86-generic": Target(RECIPES, "x86 CPU, OpenVINO (takes QDQ ONNX) when installed"),
}


def target(device_class: str) -> Target:
    """The :class:`Target` of a device class; InputError naming the known ones."""
    try:
        return TARGETS[device_class]
    except KeyError:
        raise InputError(
            f"--target {device_class!r}: unknown device class; known: {', '.join(TARGETS)}"
        ) from None


def recipes_for(device_class: str, asked: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(recipes to try, recipes skipped) for a device class and an optional ``--recipes`` list."""
    unknown = [name for name in asked if name not in RECIPES]
    if unknown:
        raise InputError(
            f"--recipes: unknown {', '.join(unknown)}; the recipes are {', '.join(RECIPES)}"
        )
    allowed = target(device_class).recipes
    wanted = [name for name in RECIPES if name in (asked or RECIPES)]
    return [n for n in wanted if n in allowed], [n for n in wanted if n not in allowed]


@dataclass(frozen=True)
class Budget:
    """What the winner must stay within, and what it is chosen for."""

    objective: Objective = "smallest"
    max_latency_ratio: float | None = 1.25
    """p50 latency / the float model's p50, measured side by side (None: no budget). Above 1
    to absorb timing noise; the latency is this machine's, not the target's."""
    max_size_ratio: float | None = None
    """File size / the float model's (None: no budget)."""


@dataclass
class Measured:
    """One candidate: built or not, and what its evaluation against the float model said."""

    name: str
    error: str | None = None
    """Why it could not be built or evaluated, as the report shows it (None: it was)."""
    size_ratio: float | None = None
    latency_ratio: float | None = None
    top1_agreement: float | None = None
    min_cosine: float | None = None
    failed_gates: list[str] = field(default_factory=list)
    """'name=value (threshold t)' for every gate it failed."""


@dataclass(frozen=True)
class Verdict:
    """The outcome for one candidate."""

    name: str
    chosen: bool
    reason: str


def choose(measured: list[Measured], budget: Budget) -> tuple[str | None, list[Verdict]]:
    """The winning candidate's name (None when none qualifies) and a verdict for every one."""
    qualified: list[Measured] = []
    reasons: dict[str, str] = {}
    for m in measured:
        if m.error is not None:
            reasons[m.name] = m.error
        elif m.failed_gates:
            reasons[m.name] = "failed gates: " + "; ".join(m.failed_gates)
        elif over := _over_budget(m, budget):
            reasons[m.name] = over
        else:
            qualified.append(m)
    key = _by_size if budget.objective == "smallest" else _by_latency
    qualified.sort(key=key)
    winner = qualified[0] if qualified else None
    for m in qualified[1:]:
        assert winner is not None
        reasons[m.name] = _lost(m, winner, budget.objective)
    if winner is not None:
        reasons[winner.name] = (
            f"chosen: the {'smallest' if budget.objective == 'smallest' else 'fastest'} of "
            f"{len(qualified)} candidate(s) that passed the gates within budget"
        )
    verdicts = [
        Verdict(m.name, winner is not None and m.name == winner.name, reasons[m.name])
        for m in measured
    ]
    return (winner.name if winner else None), verdicts


def _over_budget(m: Measured, budget: Budget) -> str:
    lat, size = m.latency_ratio, m.size_ratio
    if budget.max_latency_ratio is not None and (lat is None or lat > budget.max_latency_ratio):
        return (
            f"over the latency budget: p50 {_x(lat)} the float model's "
            f"(budget {budget.max_latency_ratio}x)"
        )
    if budget.max_size_ratio is not None and (size is None or size > budget.max_size_ratio):
        return (
            f"over the size budget: {_x(size)} the float model's (budget {budget.max_size_ratio}x)"
        )
    return ""


def _lost(m: Measured, winner: Measured, objective: Objective) -> str:
    if objective == "smallest":
        return (
            f"passed, but larger than {winner.name} (size {_x(m.size_ratio)} vs "
            f"{_x(winner.size_ratio)})"
        )
    return (
        f"passed, but slower than {winner.name} (latency {_x(m.latency_ratio)} vs "
        f"{_x(winner.latency_ratio)})"
    )


def _by_size(m: Measured) -> tuple[float, float]:
    return (_or_inf(m.size_ratio), _or_inf(m.latency_ratio))


def _by_latency(m: Measured) -> tuple[float, float]:
    return (_or_inf(m.latency_ratio), _or_inf(m.size_ratio))


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else value


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"
