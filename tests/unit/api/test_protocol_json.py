"""The JSON side of the Open Inference Protocol codec (orjson): what it refuses and how it says
so, and that outputs written from the array buffers read back as the same values."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from edge_agent.api.protocol import ProtocolError, decode_request, encode_response


def body(data: object, shape: list[int], datatype: str = "FP32") -> bytes:
    tensor = {"name": "x", "shape": shape, "datatype": datatype, "data": data}
    return json.dumps({"inputs": [tensor]}).encode()


def test_flat_and_nested_data_decode_to_the_same_array():
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    flat = decode_request(body(values.ravel().tolist(), [2, 3]), None).inputs["x"]
    nested = decode_request(body(values.tolist(), [2, 3]), None).inputs["x"]
    assert flat.dtype == nested.dtype == np.float32
    assert np.array_equal(flat, values) and np.array_equal(nested, values)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [NaN]}]}', "NaN"),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [Infinity]}]}',
            "NaN and Infinity are not JSON numbers",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1e999]}]}',
            "must fit a 64-bit float",
        ),
        (b"[" * 5000 + b"]" * 5000, "too deeply"),
        (b"{not json", "not valid JSON"),
        (b'"\xff"', "not valid JSON"),
    ],
)
def test_refuses_what_is_not_json_with_a_clear_message(raw, message):
    with pytest.raises(ProtocolError, match=message):
        decode_request(raw, None)


def test_rejects_a_value_that_overflows_the_datatype_instead_of_making_inf():
    with pytest.raises(ProtocolError, match="does not fit FP32"):
        decode_request(body([1e300], [1]), None)
    with pytest.raises(ProtocolError, match="does not fit UINT8"):
        decode_request(body([300], [1], "UINT8"), None)


def test_a_count_mismatch_is_refused_before_conversion():
    with pytest.raises(ProtocolError, match="needs 4 values, got 3"):
        decode_request(body([1, 2, 3], [2, 2]), None)


def test_binary_inputs_are_views_of_the_body_not_copies():
    x = np.arange(4, dtype=np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    ).encode()
    request = decode_request(header + x.tobytes(), len(header))
    array = request.inputs["x"]
    assert np.array_equal(array, x) and not array.flags.owndata


@pytest.mark.parametrize(
    "array",
    [
        np.array([[0.1, 1 / 3, -2.5e-7]], np.float32),
        np.array([0.1, 1e300], np.float64),
        np.array([1.5, -0.25], np.float16),
        np.array([[2**40, -3]], np.int64),
        np.array([0, 255], np.uint8),
        np.array([True, False]),
        np.arange(12, dtype=np.float32).reshape(3, 4)[:, 1],  # not contiguous
    ],
)
def test_outputs_written_from_the_buffer_read_back_as_the_same_values(array):
    request = decode_request(body([0.0], [1]), None)
    payload, json_length = encode_response("m", "1", request, {"y": array}, ["y"])
    assert json_length is None
    (output,) = orjson.loads(payload)["outputs"]
    assert output["shape"] == list(array.shape)
    back = np.asarray(output["data"], dtype=array.dtype).reshape(array.shape)
    assert np.array_equal(back, array)


def test_a_non_finite_output_is_written_as_null_so_the_body_stays_json():
    request = decode_request(body([0.0], [1]), None)
    payload, _ = encode_response(
        "m", "1", request, {"y": np.array([np.nan, np.inf, 1.0], np.float32)}, ["y"]
    )
    assert json.loads(payload)["outputs"][0]["data"] == [None, None, 1.0]
