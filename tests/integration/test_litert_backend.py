"""The LiteRT backend on the real sample models: accuracy, quantized I/O, delegate fallback."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import LiteRTDelegate, RuntimeSettings
from edge_agent.errors import DelegateError, InputError, ModelError
from edge_agent.runtime import load_model
from tests.fakes.native import refusing_delegate

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def test_set(models_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(models_dir / "digits" / "test_set.npz")
    return data["x"], data["y"]


def settings_with(*delegates: LiteRTDelegate, policy: str = "fallback") -> RuntimeSettings:
    settings = RuntimeSettings(on_delegate_failure=policy)  # type: ignore[arg-type]
    settings.litert.delegates = list(delegates)
    return settings


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    name = model.inputs[0].name
    predictions = [
        int(np.argmax(next(iter(model.run({name: x[i : i + 1]}).values())))) for i in range(len(x))
    ]
    return float(np.mean(np.array(predictions) == y))


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_sample_model_classifies_held_out_digits(models_dir, test_set, variant):
    model = load_model(models_dir / "digits" / f"digits_{variant}.tflite")
    assert model.delegate.name == "xnnpack"
    assert accuracy(model, *test_set) >= 0.97


def test_int8_model_exposes_its_quantization_and_takes_float_input(models_dir, test_set):
    model = load_model(models_dir / "digits" / "digits_int8.tflite")
    (spec,) = model.inputs
    assert spec.dtype == np.int8 and spec.shape == (1, 8, 8, 1)
    assert spec.quantization is not None
    assert spec.quantization.scale == pytest.approx(1 / 255, rel=1e-3)
    assert model.outputs[0].quantization is not None
    x = test_set[0][:1]
    as_float = model.run({spec.name: x})
    out = next(iter(as_float.values()))
    assert out.dtype == np.float32
    assert out.sum() == pytest.approx(1.0, abs=0.05)  # dequantized softmax probabilities
    stored = np.clip(
        np.round(x / spec.quantization.scale) + spec.quantization.zero_point, -128, 127
    ).astype(np.int8)
    raw = model.run({spec.name: stored}, dequantize=False)
    assert next(iter(raw.values())).dtype == np.int8
    q = model.outputs[0].quantization
    assert np.allclose((next(iter(raw.values())).astype(np.float32) - q.zero_point) * q.scale, out)


def test_cpu_reference_kernels_agree_with_xnnpack(models_dir, test_set):
    x = test_set[0][:50]
    fast = load_model(models_dir / "digits" / "digits_fp32.tflite")
    reference = load_model(
        models_dir / "digits" / "digits_fp32.tflite", settings_with(LiteRTDelegate(name="cpu"))
    )
    assert reference.delegate.name == "cpu"
    name = fast.inputs[0].name
    for i in range(len(x)):
        a = next(iter(fast.run({name: x[i : i + 1]}).values()))
        b = next(iter(reference.run({name: x[i : i + 1]}).values()))
        assert np.allclose(a, b, atol=1e-5)


def test_missing_edgetpu_library_falls_back_to_xnnpack_and_says_why(models_dir):
    model = load_model(
        models_dir / "digits" / "digits_int8.tflite",
        settings_with(LiteRTDelegate(name="edgetpu"), LiteRTDelegate(name="xnnpack")),
    )
    assert model.delegate.name == "xnnpack"
    (skipped,) = model.delegate.skipped
    assert skipped.name == "edgetpu" and "libedgetpu.so.1" in skipped.reason


def test_a_delegate_that_refuses_the_model_falls_back(models_dir, tmp_path):
    library = refusing_delegate(tmp_path)
    model = load_model(
        models_dir / "digits" / "digits_fp32.tflite",
        settings_with(LiteRTDelegate(name="external", library=str(library))),
    )
    assert model.delegate.name == "cpu"  # the plan after 'external' is the CPU floor
    (skipped,) = model.delegate.skipped
    assert skipped.name == "external"


def test_fail_policy_raises_instead_of_falling_back(models_dir, tmp_path):
    library = refusing_delegate(tmp_path)
    with pytest.raises(DelegateError, match=r"no delegate could run the model.*external"):
        load_model(
            models_dir / "digits" / "digits_fp32.tflite",
            settings_with(LiteRTDelegate(name="external", library=str(library)), policy="fail"),
        )


def test_wrong_input_shape_is_an_input_error_not_a_crash(models_dir):
    model = load_model(models_dir / "digits" / "digits_fp32.tflite")
    with pytest.raises(InputError, match=r"expects shape \[1, 8, 8, 1\], got \[1, 8, 8\]"):
        model.run({model.inputs[0].name: np.zeros((1, 8, 8), np.float32)})


def test_concurrent_callers_each_get_their_own_answer(models_dir, test_set):
    model = load_model(models_dir / "digits" / "digits_fp32.tflite")
    name = model.inputs[0].name
    x, _ = test_set
    expected = [
        int(np.argmax(next(iter(model.run({name: x[i : i + 1]}).values())))) for i in range(40)
    ]
    mismatches: list[int] = []

    def worker(offset: int) -> None:
        for i in range(offset, 40, 4):
            got = int(np.argmax(next(iter(model.run({name: x[i : i + 1]}).values()))))
            if got != expected[i]:
                mismatches.append(i)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_a_closed_model_refuses_to_run(models_dir):
    model = load_model(models_dir / "digits" / "digits_fp32.tflite")
    model.close()
    with pytest.raises(ModelError, match="closed"):
        model.run({model.inputs[0].name: np.zeros((1, 8, 8, 1), np.float32)})
