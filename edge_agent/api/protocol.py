"""The Open Inference Protocol (KServe v2) wire format: JSON tensors and binary tensor data.

Pure functions from request bytes to numpy arrays and from arrays to response bytes, so the
HTTP server stays a thin shell and every rule here is unit-tested without a socket.

Binary extension: when the ``Inference-Header-Content-Length`` header is present, the body is
that many bytes of JSON followed by the raw tensors, in input order, each input saying its size
in ``parameters.binary_data_size``. Outputs are returned the same way when the request asks
for it (``outputs[i].parameters.binary_data`` or ``parameters.binary_data_output``).

JSON goes through orjson (native code, wheels for aarch64 and armv7l): request ``data`` lists
become arrays with one ``np.fromiter`` pass, and output arrays are written by orjson straight
from their buffers (``OPT_SERIALIZE_NUMPY``), never through ``tolist()``. orjson is stricter than
the standard library: ``NaN``, ``Infinity`` and numbers beyond a double (``1e999``) are not
JSON and are refused with a 400 that says so, and a non-finite output value is written as
``null`` (docs/decisions.md, "JSON through orjson").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from edge_agent.runtime.base import DYNAMIC, TensorSpec

HEADER_LENGTH = "Inference-Header-Content-Length"

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_NOT_JSON_NUMBERS = (b"NaN", b"Infinity")


class ProtocolError(ValueError):
    """A request that does not follow the protocol; becomes a 400 with this message."""


def datatype_of(dtype: np.dtype) -> str:
    """OIP datatype name of a numpy dtype."""
    return _NAMES.get(np.dtype(dtype), "BYTES")


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    """``{"name", "datatype", "shape"}`` of a tensor, -1 for dynamic dimensions."""
    return {
        "name": spec.name,
        "datatype": datatype_of(spec.dtype),
        "shape": [DYNAMIC if d == DYNAMIC else int(d) for d in spec.shape],
    }


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request."""

    id: str | None
    inputs: dict[str, np.ndarray]
    binary_outputs: dict[str, bool]
    """Per requested output: return as binary data? Empty: every output, JSON."""
    binary_by_default: bool
    requested: tuple[str, ...]
    """Outputs asked for (empty: all)."""


def decode_request(
    body: bytes, header_length: int | None, keep: list[Any] | None = None
) -> InferRequest:
    """Parse an infer request body (JSON, or JSON + binary tensors).

    ``keep``, when given, receives the parsed JSON document, so the caller decides when it is
    freed: a ``data`` list of 27,648 numbers takes about 0.3 ms to free, which the server
    spends after the response is out rather than before (docs/decisions.md, "JSON path").
    """
    view = memoryview(body)  # slices of it share the body: no copy of the tensors
    if header_length is None:
        header_bytes, binary = view, view[:0]
    else:
        if header_length < 0 or header_length > len(body):
            raise ProtocolError(
                f"{HEADER_LENGTH} is {header_length} but the body has {len(body)} bytes"
            )
        header_bytes, binary = view[:header_length], view[header_length:]
    try:
        header = orjson.loads(header_bytes)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(_json_error(str(exc), header_bytes)) from None
    if keep is not None:
        keep.append(header)
    if not isinstance(header, dict):
        raise ProtocolError("the request must be a JSON object with an 'inputs' list")
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for item in raw_inputs:
        name, array, used = _decode_tensor(item, binary, offset)
        if name in inputs:
            raise ProtocolError(f"input '{name}' is given twice")
        inputs[name] = array
        offset += used
    if offset != len(binary):
        raise ProtocolError(
            f"{len(binary) - offset} bytes of binary data are not claimed by any "
            "input's binary_data_size"
        )
    parameters = _parameters(header)
    binary_default = bool(parameters.get("binary_data_output", False))
    requested: list[str] = []
    binary_outputs: dict[str, bool] = {}
    raw_outputs = header.get("outputs", [])
    if not isinstance(raw_outputs, list):
        raise ProtocolError("'outputs' must be a list")
    for item in raw_outputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ProtocolError("each requested output needs a 'name'")
        requested.append(item["name"])
        binary_outputs[item["name"]] = bool(_parameters(item).get("binary_data", binary_default))
    request_id = header.get("id")
    return InferRequest(
        id=str(request_id) if request_id is not None else None,
        inputs=inputs,
        binary_outputs=binary_outputs,
        binary_by_default=binary_default,
        requested=tuple(requested),
    )


def _json_error(reason: str, text: memoryview) -> str:
    """A 400 message for a body orjson refused, with the usual causes named."""
    if "depth limit" in reason:
        return f"the request body nests JSON too deeply ({reason})"
    message = f"the request body is not valid JSON: {reason}"
    if "infinity" in reason:
        return message + " (numbers must fit a 64-bit float)"
    if any(token in bytes(text) for token in _NOT_JSON_NUMBERS):
        return message + " (NaN and Infinity are not JSON numbers)"
    return message


def _parameters(item: Mapping[str, Any]) -> Mapping[str, Any]:
    parameters = item.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ProtocolError("'parameters' must be an object")
    return parameters


def _decode_tensor(item: Any, binary: memoryview, offset: int) -> tuple[str, np.ndarray, int]:
    if not isinstance(item, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype and data")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ProtocolError("an input has no 'name'")
    datatype = item.get("datatype")
    if not isinstance(datatype, str) or datatype not in DATATYPES:  # a list is unhashable
        raise ProtocolError(
            f"input '{name}': datatype {datatype!r} is not supported; use one of "
            f"{', '.join(DATATYPES)}"
        )
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > 8
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)
    ):
        raise ProtocolError(
            f"input '{name}': 'shape' must be a list of up to 8 non-negative integers"
        )
    dtype = DATATYPES[datatype]
    count = math.prod(shape)  # Python ints: [65536] * 4 must not wrap around to 0
    size = _parameters(item).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise ProtocolError(f"input '{name}': binary_data_size {size!r} runs past the body")
        if size != count * dtype.itemsize:
            raise ProtocolError(
                f"input '{name}': binary_data_size is {size} bytes but shape "
                f"{shape} of {datatype} needs {count * dtype.itemsize}"
            )
        array = np.frombuffer(binary, dtype=dtype, count=count, offset=offset).reshape(shape)
        return name, array, size
    if "data" not in item:
        raise ProtocolError(f"input '{name}' has neither 'data' nor binary_data_size")
    data = item["data"]
    flat = isinstance(data, list) and not (data and isinstance(data[0], list))
    if flat and len(data) != count:  # before any conversion work
        raise ProtocolError(f"input '{name}': shape {shape} needs {count} values, got {len(data)}")
    try:
        with np.errstate(over="raise"):  # 1e300 as FP32 is an error, not inf
            if flat:  # the usual row-major list: one pass, no nested-list inspection
                array = np.fromiter(data, dtype=dtype, count=count)
            else:
                array = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError, FloatingPointError) as exc:
        raise ProtocolError(f"input '{name}': data does not fit {datatype}: {exc}") from None
    if array.size != count:
        raise ProtocolError(f"input '{name}': shape {shape} needs {count} values, got {array.size}")
    return name, array.reshape(shape), 0


def encode_response(
    model: str,
    version: str,
    request: InferRequest,
    outputs: Mapping[str, np.ndarray],
    output_order: Sequence[str],
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    names = list(request.requested) or list(output_order)
    unknown = [n for n in names if n not in outputs]
    if unknown:
        raise ProtocolError(
            f"model '{model}' has no output(s) {', '.join(unknown)}; it has "
            f"{', '.join(output_order)}"
        )
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name in names:
        array = np.ascontiguousarray(outputs[name])
        entry: dict[str, Any] = {
            "name": name,
            "datatype": datatype_of(array.dtype),
            "shape": list(array.shape),
        }
        if request.binary_outputs.get(name, request.binary_by_default):
            blob = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif array.dtype in _NAMES and array.dtype.isnative:
            entry["data"] = array.reshape(-1)  # orjson writes it from the buffer
        else:
            entry["data"] = array.ravel().tolist()
        tensors.append(entry)
    body: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": tensors}
    if request.id is not None:
        body["id"] = request.id
    header = orjson.dumps(body, option=_DUMPS_OPTIONS)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
