"""Delegate / provider planning: pure decisions, no runtime needed."""

from __future__ import annotations

import pytest

from edge_agent.config import LiteRTDelegate, OnnxProvider
from edge_agent.errors import DelegateError
from edge_agent.runtime.delegates import (
    count_placement,
    ort_provider_chain,
    plan_litert,
    plan_onnx,
    primary_provider,
)

CPU_ONLY = ["AzureExecutionProvider", "CPUExecutionProvider"]
JETSON = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def providers(*names: str) -> list[OnnxProvider]:
    return [OnnxProvider(name=n) for n in names]  # type: ignore[arg-type]


def test_onnx_plan_keeps_preference_order_among_available_providers():
    plan = plan_onnx(providers("tensorrt", "cuda", "cpu"), JETSON, "fallback")
    assert [a.name for a in plan.attempts] == ["tensorrt", "cuda", "cpu"]
    assert plan.skipped == ()


def test_onnx_plan_skips_providers_missing_from_the_build_and_says_why():
    plan = plan_onnx(providers("tensorrt", "cuda", "cpu"), CPU_ONLY, "fallback")
    assert [a.name for a in plan.attempts] == ["cpu"]
    assert [s.name for s in plan.skipped] == ["tensorrt", "cuda"]
    assert "TensorrtExecutionProvider is not in this onnxruntime build" in plan.skipped[0].reason


def test_onnx_plan_always_ends_on_cpu_under_fallback():
    plan = plan_onnx(providers("cuda"), JETSON, "fallback")
    assert [a.name for a in plan.attempts] == ["cuda", "cpu"]


def test_onnx_chain_for_an_attempt_is_it_and_everything_after():
    plan = plan_onnx(providers("tensorrt", "cuda"), JETSON, "fallback")
    assert [p for p, _ in ort_provider_chain(plan, 0)] == JETSON
    assert [p for p, _ in ort_provider_chain(plan, 1)] == JETSON[1:]


def test_fail_policy_allows_only_the_first_preference():
    plan = plan_onnx(providers("cuda", "cpu"), JETSON, "fail")
    assert [a.name for a in plan.attempts] == ["cuda"]


def test_fail_policy_with_first_preference_missing_is_an_error_naming_the_fix():
    with pytest.raises(DelegateError, match=r"'tensorrt' is not available.*onnxruntime-gpu"):
        plan_onnx(providers("tensorrt", "cpu"), CPU_ONLY, "fail")


def test_provider_options_are_passed_as_strings():
    prefs = [OnnxProvider(name="tensorrt", options={"trt_fp16_enable": True, "device_id": 0})]
    plan = plan_onnx(prefs, JETSON, "fallback")
    assert dict(plan.attempts[0].options) == {"trt_fp16_enable": "true", "device_id": "0"}


def test_litert_plan_uses_default_libraries_and_ends_on_cpu():
    plan = plan_litert(
        [LiteRTDelegate(name="edgetpu", options={"device": "usb"}), LiteRTDelegate(name="xnnpack")],
        "fallback",
    )
    assert [(a.name, a.target) for a in plan.attempts] == [
        ("edgetpu", "libedgetpu.so.1"),
        ("xnnpack", ""),
        ("cpu", ""),
    ]
    assert dict(plan.attempts[0].options) == {"device": "usb"}


def test_litert_plan_stops_at_cpu_and_drops_repeats():
    plan = plan_litert(
        [
            LiteRTDelegate(name="xnnpack"),
            LiteRTDelegate(name="xnnpack"),
            LiteRTDelegate(name="cpu"),
            LiteRTDelegate(name="gpu"),
        ],
        "fallback",
    )
    assert [a.name for a in plan.attempts] == ["xnnpack", "cpu"]


def test_litert_plan_under_fail_policy_is_the_first_delegate_only():
    plan = plan_litert([LiteRTDelegate(name="gpu"), LiteRTDelegate(name="xnnpack")], "fail")
    assert [a.name for a in plan.attempts] == ["gpu"]


def test_placement_counts_nodes_per_canonical_provider_most_first():
    counts = count_placement(["CUDAExecutionProvider"] * 3 + ["CPUExecutionProvider"] * 5)
    assert counts == {"cpu": 5, "cuda": 3}
    assert list(counts) == ["cpu", "cuda"]


def test_primary_provider_is_the_first_in_the_chain_that_took_nodes():
    chain = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert primary_provider({"cuda": 10, "cpu": 2}, chain) == "cuda"
    assert primary_provider({"cpu": 4}, chain) == "cpu"
    assert primary_provider(None, chain) == "tensorrt"
