"""Models as they come: opset upgrade and pinned input shapes (onnx + onnxruntime tools)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.convert.prepare import (
    default_opset,
    fix_input_shapes,
    fixed_specs,
    parse_input_shapes,
    upgrade_opset,
)
from edge_agent.errors import InputError
from edge_agent.runtime import TensorSpec

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.tools.onnx_model_utils")
from onnx import TensorProto, helper  # noqa: E402


def paddle_like(opset=11):
    """A conv net exported like paddle2onnx does: batch -1, height and width both named '?'."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, "?", "?"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 4, "?", "?"])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.ones(108, np.float32))
    conv = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph([conv], "g", [x], [y], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_parse_input_shapes():
    assert parse_input_shapes(["x=1,3,48,192", "2,2"]) == {"x": (1, 3, 48, 192), "": (2, 2)}
    for bad in ("x=", "x=1,-3", "a,b"):
        with pytest.raises(InputError, match="--input-shape"):
            parse_input_shapes([bad])


def test_height_and_width_named_alike_get_their_own_sizes():
    """Regression: replacing the dim_param '?' graph-wide gave H and W the same size."""
    model, notes = fix_input_shapes(paddle_like(), {"": (1, 3, 48, 192)})
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 48, 192] and "fixed" in notes[0]
    out = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert out == [1, 4, 48, 192]


def test_open_spatial_dims_without_a_shape_are_an_error_that_says_what_to_give():
    with pytest.raises(InputError, match=r"open dimensions besides the batch.*--input-shape"):
        fix_input_shapes(paddle_like(), {})
    with pytest.raises(InputError, match="inputs are x"):
        fix_input_shapes(paddle_like(), {"nope": (1, 3, 8, 8)})
    with pytest.raises(InputError, match="fixed at 3"):
        fix_input_shapes(paddle_like(), {"x": (1, 1, 8, 8)})


def test_upgrade_opset_11_to_13():
    model = paddle_like(11)
    assert default_opset(model) == 11
    assert default_opset(upgrade_opset(model)) == 13


def test_fixed_specs_pins_batch_and_asked_shape():
    specs = [TensorSpec("x", (-1, 3, -1, -1), np.dtype(np.float32))]
    assert fixed_specs(specs, {"": (1, 3, 48, 192)})[0].shape == (1, 3, 48, 192)
    one = [TensorSpec("a", (-1, 10), np.dtype(np.float32))]
    assert fixed_specs(one, {})[0].shape == (1, 10)
