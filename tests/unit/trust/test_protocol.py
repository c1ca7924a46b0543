"""The chunk protocol: every malformed frame decodes to None, never to an exception."""

from __future__ import annotations

import json

import pytest

from edge_agent.trust.protocol import (
    HEADER_BYTES,
    MAX_CHUNK_BYTES,
    OK,
    TOO_MANY_REQUESTS,
    ChunkRequest,
    ChunkResponse,
    decode_request,
    decode_response,
    safe_path,
)


def test_request_and_response_round_trip():
    request = ChunkRequest("00ff00ff00ff00ff", "targets/models/d/1/ab.d.tflite", 4096, 2048)
    assert decode_request(request.encode()) == request
    response = ChunkResponse(request.id, request.path, 4096, OK, 10_000, b"abc" * 10)
    decoded = decode_response(response.encode())
    assert decoded is not None and decoded.data == b"abc" * 10 and decoded.total == 10_000
    assert (decoded.id, decoded.path, decoded.offset, decoded.status) == (
        request.id,
        request.path,
        4096,
        OK,
    )


def test_range_request_names_its_frame_size():
    request = ChunkRequest("00ff00ff00ff00ff", "targets/a/b", 0, 8 * 2048, 2048)
    decoded = decode_request(request.encode())
    assert decoded == request and decoded.frame_bytes == 2048
    assert ChunkRequest("00ff00ff", "targets/a/b", 0, 4096).frame_bytes == 4096


def test_refusals_carry_reason_and_retry_after():
    refusal = ChunkResponse(
        "00ff00ff", "metadata/a.json", 0, TOO_MANY_REQUESTS, reason="slow", retry_after=0.25
    )
    decoded = decode_response(refusal.encode())
    assert decoded is not None
    assert (decoded.status, decoded.reason, decoded.retry_after) == (
        TOO_MANY_REQUESTS,
        "slow",
        0.25,
    )


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "metadata/../../etc/passwd",
        "/metadata/root.json",
        "keys/root.pem",
        "metadata",
        "targets\\x",
        "",
        "metadata//root.json",
        "targets/./a",
    ],
)
def test_path_traversal_and_paths_outside_the_repository_are_refused(path: str):
    assert safe_path(path) is None
    assert (
        decode_request(
            json.dumps({"id": "00ff00ff", "path": path, "offset": 0, "length": 1}).encode()
        )
        is None
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"id": "zz", "path": "metadata/a", "offset": 0, "length": 1}',
        b'{"id": "00ff00ff", "path": "metadata/a", "offset": -1, "length": 1}',
        b'{"id": "00ff00ff", "path": "metadata/a", "offset": 0, "length": 0}',
        b'{"id": "00ff00ff", "path": "metadata/a", "offset": true, "length": 1}',
        b'{"id": "00ff00ff", "path": "metadata/a", "offset": 0, "length": 1, "chunk": -1}',
        b'{"id": "00ff00ff", "path": "metadata/a", "offset": 0, "length": 1, "chunk": "1"}',
        b'{"id": "00ff00ff", "path": "metadata/a", "offset": 0, "length": 999999999999}',
        b"x" * 5000,
    ],
)
def test_garbage_requests_decode_to_none(payload: bytes):
    assert decode_request(payload) is None


def test_garbage_oversized_and_mismatching_responses_decode_to_none():
    good = ChunkResponse("00ff00ff00ff00ff", "metadata/timestamp.json", 0, OK, 3, b"abc").encode()
    tampered = good[:-1] + b"X"  # the CRC no longer matches
    unknown_status = bytearray(good)
    unknown_status[3:5] = (299).to_bytes(2, "big")
    wrong_magic = b"XX" + good[2:]
    wrong_version = good[:2] + b"\x09" + good[3:]
    id_too_long = bytearray(good)
    id_too_long[5] = 250  # the strings run past the end of the frame
    big = ChunkResponse(
        "00ff00ff", "targets/a/b", 0, OK, 1 << 30, b"\0" * (MAX_CHUNK_BYTES + 1)
    ).encode()
    for frame in (
        b"",
        b"\x00",
        b"\xff\xff{}",
        good[: HEADER_BYTES - 1],
        tampered,
        bytes(unknown_status),
        wrong_magic,
        wrong_version,
        bytes(id_too_long),
        big,
        b"\x00\x02[]",
    ):
        assert decode_response(frame) is None
    assert decode_response(good) is not None
