"""The ONNX Runtime backend on the real sample models: providers, placement, cache, fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import OnnxProvider, RuntimeSettings
from edge_agent.errors import DelegateError
from edge_agent.runtime import load_model
from tests.fakes.ort_sessions import FailingProviderSessions

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def test_set(models_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(models_dir / "digits" / "test_set.npz")
    return data["x"].transpose(0, 3, 1, 2).copy(), data["y"]  # the ONNX models are NCHW


def settings_with(*names: str, policy: str = "fallback", **onnx: object) -> RuntimeSettings:
    settings = RuntimeSettings(on_delegate_failure=policy)  # type: ignore[arg-type]
    settings.onnx.providers = [OnnxProvider(name=n) for n in names]  # type: ignore[arg-type]
    for key, value in onnx.items():
        setattr(settings.onnx, key, value)
    return settings


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_sample_model_classifies_a_whole_batch(models_dir, test_set, variant):
    model = load_model(models_dir / "digits" / f"digits_{variant}.onnx")
    x, y = test_set
    assert model.inputs[0].shape == (-1, 1, 8, 8)  # dynamic batch
    (probabilities,) = model.run({"input": x}).values()
    assert probabilities.shape == (len(x), 10)
    assert float(np.mean(probabilities.argmax(axis=1) == y)) >= 0.97


def test_placement_reports_the_nodes_each_provider_took(models_dir):
    model = load_model(models_dir / "digits" / "digits_fp32.onnx")
    assert model.delegate.name == "cpu"
    assert model.delegate.node_placement is not None
    assert set(model.delegate.node_placement) == {"cpu"}
    assert model.delegate.node_placement["cpu"] >= 3


def test_a_provider_that_binds_but_takes_no_node_is_not_reported_as_the_delegate(models_dir):
    model = load_model(models_dir / "digits" / "digits_fp32.onnx", settings_with("azure", "cpu"))
    assert "AzureExecutionProvider" in model.delegate.detail
    assert model.delegate.name == "cpu"


def test_providers_missing_from_this_build_are_skipped_with_the_reason(models_dir):
    model = load_model(
        models_dir / "digits" / "digits_fp32.onnx", settings_with("tensorrt", "cuda", "cpu")
    )
    assert model.delegate.name == "cpu"
    assert [s.name for s in model.delegate.skipped] == ["tensorrt", "cuda"]
    assert "not in this onnxruntime build" in model.delegate.skipped[0].reason


def test_a_provider_that_fails_to_load_falls_back_to_the_next(models_dir, test_set):
    sessions = FailingProviderSessions(fail_at_load=["AzureExecutionProvider"])
    model = load_model(
        models_dir / "digits" / "digits_fp32.onnx",
        settings_with("azure", "cpu"),
        session_factory=sessions,
    )
    assert sessions.opened[0][0] == "AzureExecutionProvider"
    assert model.delegate.name == "cpu"
    (skipped,) = model.delegate.skipped
    assert skipped.name == "azure" and "could not be created" in skipped.reason
    x, y = test_set
    assert model.run({"input": x[:1]})["probabilities"].argmax() == y[0]


def test_a_provider_that_fails_at_run_time_falls_back_and_the_request_succeeds(
    models_dir, test_set
):
    sessions = FailingProviderSessions(fail_at_run=["AzureExecutionProvider"])
    model = load_model(
        models_dir / "digits" / "digits_fp32.onnx",
        settings_with("azure", "cpu"),
        session_factory=sessions,
    )
    x, y = test_set
    (probabilities,) = model.run({"input": x[:8]}).values()  # the provider fails here
    assert np.array_equal(probabilities.argmax(axis=1), y[:8])
    assert [s.name for s in model.delegate.skipped] == ["azure"]
    assert "failed at run" in model.delegate.skipped[0].reason
    assert model.delegate.detail == "CPUExecutionProvider"


def test_fail_policy_raises_when_the_provider_fails(models_dir):
    sessions = FailingProviderSessions(fail_at_load=["AzureExecutionProvider"])
    with pytest.raises(DelegateError, match="azure"):
        load_model(
            models_dir / "digits" / "digits_fp32.onnx",
            settings_with("azure", policy="fail"),
            session_factory=sessions,
        )


def test_fail_policy_raises_when_the_provider_is_not_installed(models_dir):
    with pytest.raises(DelegateError, match="'cuda' is not available"):
        load_model(models_dir / "digits" / "digits_fp32.onnx", settings_with("cuda", policy="fail"))


def test_optimized_graph_is_cached_and_reused(models_dir, test_set, tmp_path):
    settings = settings_with("cpu", optimized_model_dir=tmp_path / "ort-cache")
    first = load_model(models_dir / "digits" / "digits_fp32.onnx", settings)
    cached = list((tmp_path / "ort-cache").glob("digits_fp32.*.opt.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    second = load_model(models_dir / "digits" / "digits_fp32.onnx", settings)
    assert cached[0].stat().st_mtime_ns == stamp  # loaded, not rewritten
    x, _ = test_set
    assert np.allclose(
        first.run({"input": x})["probabilities"],
        second.run({"input": x})["probabilities"],
        atol=1e-6,
    )


def test_threads_setting_reaches_the_session(models_dir):
    model = load_model(models_dir / "digits" / "digits_fp32.onnx", RuntimeSettings(threads=1))
    options = model.session.get_session_options()  # type: ignore[attr-defined]
    assert options.intra_op_num_threads == 1


def test_a_closed_model_refuses_to_run(models_dir):
    from edge_agent.errors import ModelError

    model = load_model(models_dir / "digits" / "digits_fp32.onnx")
    model.close()
    with pytest.raises(ModelError, match="closed"):
        model.run({"input": np.zeros((1, 1, 8, 8), np.float32)})
