"""The chunk protocol between devices and the registry, over MQTT. Pure encoding, no I/O.

A device publishes a request on ``registry/req/<device>``::

    {"id": "9f1c...", "path": "metadata/3.targets.json", "offset": 0, "length": 65536}

and the registry answers on ``registry/resp/<device>`` with one binary frame::

    2 bytes big-endian header length | JSON header | chunk bytes

    header = {"id", "path", "offset", "status", "total", "sha256", "reason", "retry_after"}

``status`` borrows HTTP's numbers because ngclient needs them: 200 a chunk, 404 no such file
(ngclient's root walk stops at 404), 429 too many requests (retry after ``retry_after`` s),
400 a bad request, 503 busy. ``sha256`` covers the chunk, so corruption is caught per chunk and
a persisted partial file can be re-checked after a power loss. None of this is trust: TUF
verifies the whole file at the end. Anything that does not decode is ``None``, never an error
that could stop a transfer.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from pathlib import PurePosixPath

MAX_CHUNK_BYTES = 1 << 20
"""The largest chunk a registry will send (far below Mosquitto's default message size limit)."""
MAX_HEADER_BYTES = 4096
_ID = re.compile(r"^[0-9a-f]{8,64}$")
_ROOTS = ("metadata", "targets")

OK = 200
BAD_REQUEST = 400
NOT_FOUND = 404
TOO_MANY_REQUESTS = 429
BUSY = 503
STATUSES = (OK, BAD_REQUEST, NOT_FOUND, TOO_MANY_REQUESTS, BUSY)


@dataclass(frozen=True)
class ChunkRequest:
    """A device asks for ``length`` bytes of ``path`` from ``offset``."""

    id: str
    path: str
    offset: int
    length: int

    def encode(self) -> bytes:
        """The request's JSON payload."""
        return json.dumps(
            {"id": self.id, "path": self.path, "offset": self.offset, "length": self.length},
            separators=(",", ":"),
        ).encode()


@dataclass(frozen=True)
class ChunkResponse:
    """The registry's answer to one request."""

    id: str
    path: str
    offset: int
    status: int
    total: int = 0
    data: bytes = b""
    sha256: str = ""
    reason: str = ""
    retry_after: float = 0.0

    def encode(self) -> bytes:
        """The binary frame: header length, JSON header, chunk bytes."""
        header = json.dumps(
            {
                "id": self.id,
                "path": self.path,
                "offset": self.offset,
                "status": self.status,
                "total": self.total,
                "sha256": self.sha256 or hashlib.sha256(self.data).hexdigest(),
                "reason": self.reason,
                "retry_after": self.retry_after,
            },
            separators=(",", ":"),
        ).encode()
        return struct.pack(">H", len(header)) + header + self.data


def safe_path(path: object) -> str | None:
    """``path`` if it names a file under ``metadata/`` or ``targets/`` (no '..'), else None."""
    if not isinstance(path, str) or not path or len(path) > 512 or "\\" in path:
        return None
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or len(pure.parts) < 2:
        return None
    if pure.parts[0] not in _ROOTS or pure.as_posix() != path:
        return None
    return path


def decode_request(payload: bytes) -> ChunkRequest | None:
    """A well-formed request, or None (the registry answers None with nothing at all)."""
    if len(payload) > 2048:
        return None
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict):
        return None
    request_id, path = raw.get("id"), safe_path(raw.get("path"))
    offset, length = raw.get("offset"), raw.get("length")
    if not isinstance(request_id, str) or not _ID.match(request_id) or path is None:
        return None
    if type(offset) is not int or type(length) is not int or offset < 0 or length <= 0:
        return None
    return ChunkRequest(request_id, path, offset, length)


def decode_response(frame: bytes) -> ChunkResponse | None:
    """A well-formed response whose data matches its hash, or None."""
    if len(frame) < 2:
        return None
    (header_len,) = struct.unpack(">H", frame[:2])
    if header_len > MAX_HEADER_BYTES or len(frame) < 2 + header_len:
        return None
    try:
        raw = json.loads(frame[2 : 2 + header_len])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict):
        return None
    data = frame[2 + header_len :]
    fields = (
        raw.get("id"),
        raw.get("path"),
        raw.get("offset"),
        raw.get("status"),
        raw.get("total"),
        raw.get("sha256"),
        raw.get("reason", ""),
        raw.get("retry_after", 0.0),
    )
    request_id, path, offset, status, total, digest, reason, retry_after = fields
    if not isinstance(request_id, str) or not isinstance(path, str) or not isinstance(reason, str):
        return None
    if type(offset) is not int or type(status) is not int or type(total) is not int:
        return None
    if status not in STATUSES or offset < 0 or total < 0 or len(data) > MAX_CHUNK_BYTES:
        return None
    if not isinstance(retry_after, (int, float)) or not 0 <= retry_after <= 3600:
        return None
    if not isinstance(digest, str) or hashlib.sha256(data).hexdigest() != digest:
        return None
    return ChunkResponse(
        request_id, path, offset, status, total, data, digest, reason[:300], float(retry_after)
    )
