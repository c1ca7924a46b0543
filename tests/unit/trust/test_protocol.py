"""The chunk protocol: every malformed frame decodes to None, never to an exception."""

from __future__ import annotations

import json
import struct

import pytest

from edge_agent.trust.protocol import (
    MAX_CHUNK_BYTES,
    OK,
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
        b"x" * 5000,
    ],
)
def test_garbage_requests_decode_to_none(payload: bytes):
    assert decode_request(payload) is None


def test_garbage_oversized_and_mismatching_responses_decode_to_none():
    good = ChunkResponse("00ff00ff00ff00ff", "metadata/timestamp.json", 0, OK, 3, b"abc").encode()
    tampered = good[:-1] + b"X"
    header = json.dumps(
        {"id": "00ff00ff", "path": "m/a", "offset": 0, "status": 299, "total": 1, "sha256": ""}
    ).encode()
    unknown_status = struct.pack(">H", len(header)) + header
    big = ChunkResponse(
        "00ff00ff", "targets/a/b", 0, OK, 1 << 30, b"\0" * (MAX_CHUNK_BYTES + 1)
    ).encode()
    for frame in (b"", b"\x00", b"\xff\xff{}", tampered, unknown_status, big, b"\x00\x02[]"):
        assert decode_response(frame) is None
