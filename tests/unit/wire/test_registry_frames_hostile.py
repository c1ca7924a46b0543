"""The registry's chunk protocol against hostile input: requests and frames decode or are None.

``trust/protocol.py`` promises that anything that does not decode is ``None``, never an error
that could stop a registry worker or a transfer. Checked with random bytes, hostile JSON and
valid frames with one byte flipped.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.trust.protocol import (
    HEADER_BYTES,
    MAX_CHUNK_BYTES,
    OK,
    ChunkRequest,
    ChunkResponse,
    decode_request,
    decode_response,
    safe_path,
)
from tests.unit.wire.strategies import encode, json_value

RELAXED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_request(payload: bytes) -> None:
    request = decode_request(payload)
    if request is not None:
        assert safe_path(request.path) == request.path and "\x00" not in request.path
        assert request.offset >= 0 and request.length > 0 and request.chunk >= 0
        assert decode_request(request.encode()) == request


@RELAXED
@given(data=st.binary(max_size=400))
def test_random_request_bytes_decode_or_are_none(data: bytes) -> None:
    check_request(data)


@RELAXED
@given(field=st.sampled_from(["id", "path", "offset", "length", "chunk", "v"]), new=json_value)
def test_a_request_with_one_hostile_field_decodes_or_is_none(field: str, new: Any) -> None:
    body = json.loads(ChunkRequest("00ff00ff00ff", "targets/a/b.tflite", 0, 4096, 1024).encode())
    check_request(encode({**body, field: new}))


def frame() -> bytes:
    return ChunkResponse("00ff00ff", "targets/a", 0, OK, 10, b"0123456789", "why").encode()


@RELAXED
@given(data=st.binary(max_size=HEADER_BYTES + 64))
def test_random_frames_decode_or_are_none(data: bytes) -> None:
    response = decode_response(b"EA\x01" + data)
    if response is not None:
        assert len(response.data) <= MAX_CHUNK_BYTES
        assert "\x00" not in response.reason
        response.reason.encode("utf-8")  # no lone surrogate


@RELAXED
@given(index=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_a_frame_with_one_byte_changed_decodes_or_is_none(index: int, value: int) -> None:
    original = bytearray(frame())
    original[index % len(original)] = value
    response = decode_response(bytes(original))
    if response is not None:
        assert response.reason.encode("utf-8") and "\x00" not in response.reason


def test_a_reason_with_nul_and_broken_utf8_is_cleaned() -> None:
    reason = b"bad\x00\xed\xa0\x80"
    header = struct.pack(">2sBHBHHQQII", b"EA", 1, 400, 2, 1, len(reason), 0, 0, 0, 0)
    response = decode_response(header + b"ab" + b"m" + reason)
    assert (
        response is not None and response.reason.startswith("bad") and "\x00" not in response.reason
    )
