"""Config of the inference runtimes: threads, delegate / provider preference, warm-up.

A device config's ``runtime:`` section (and an agent config's override of it). The delegate and
provider names here are the ones ``--delegate`` accepts on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge_agent.config.base import StrictModel

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
