"""Input checking and (de)quantization shared by every backend."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.errors import InputError
from edge_agent.runtime.base import DYNAMIC, Quantization, TensorSpec
from edge_agent.runtime.tensors import dequantize, finish_outputs, prepare_inputs, quantize

Q = Quantization(scale=1 / 255, zero_point=-128)
INT8_IMAGE = TensorSpec("image", (1, 8, 8, 1), np.dtype(np.int8), Q)
FLOAT_BATCH = TensorSpec("x", (DYNAMIC, 4), np.dtype(np.float32))


def test_quantize_then_dequantize_is_within_half_a_step():
    values = np.linspace(0, 1, 101, dtype=np.float32)
    stored = quantize(values, Q, np.dtype(np.int8))
    assert stored.dtype == np.int8
    assert np.max(np.abs(dequantize(stored, Q) - values)) <= Q.scale / 2 + 1e-7


def test_quantize_clips_to_the_integer_range():
    stored = quantize(np.array([-5.0, 5.0], np.float32), Q, np.dtype(np.int8))
    assert stored.tolist() == [-128, 127]


def test_float_input_to_a_quantized_tensor_is_quantized():
    (array,) = prepare_inputs([INT8_IMAGE], {"image": np.ones((1, 8, 8, 1), np.float32)}, "m")
    assert array.dtype == np.int8 and int(array.max()) == 127


def test_raw_integers_of_the_tensor_dtype_pass_unchanged():
    raw = np.full((1, 8, 8, 1), 7, np.int8)
    (array,) = prepare_inputs([INT8_IMAGE], {"image": raw}, "m")
    assert np.array_equal(array, raw)


def test_dynamic_dimensions_accept_any_size_and_float64_is_narrowed():
    (array,) = prepare_inputs([FLOAT_BATCH], {"x": np.zeros((5, 4))}, "m")
    assert array.shape == (5, 4) and array.dtype == np.float32


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"x": np.zeros((2, 3), np.float32)}, "expects shape [?, 4], got [2, 3]"),
        ({"x": np.zeros((4,), np.float32)}, "expects shape [?, 4], got [4]"),
        ({"y": np.zeros((1, 4), np.float32)}, "takes inputs [x], got [y]"),
        ({"x": np.array([["a"] * 4])}, "expects float32, got <U1"),
    ],
)
def test_mismatched_inputs_get_an_input_error_naming_model_and_tensor(inputs, message):
    with pytest.raises(InputError, match="model 'm'") as caught:
        prepare_inputs([FLOAT_BATCH], inputs, "m")
    assert message in str(caught.value)


def test_outputs_are_dequantized_unless_raw_is_asked_for():
    spec = TensorSpec("scores", (1, 2), np.dtype(np.int8), Quantization(0.5, 0))
    stored = np.array([[2, 4]], np.int8)
    assert finish_outputs([spec], [stored], True)["scores"].tolist() == [[1.0, 2.0]]
    assert finish_outputs([spec], [stored], False)["scores"].dtype == np.int8
