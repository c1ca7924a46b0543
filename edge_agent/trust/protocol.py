"""The chunk protocol between devices and the registry, over MQTT. Pure encoding, no I/O.

A device publishes a *range request* on ``registry/req/<device>`` (JSON; one per range, so
requests are rare and their cost does not matter)::

    {"v": 1, "id": "9f1c...", "path": "targets/...", "offset": 0, "length": 2097152,
     "chunk": 262144}

and the registry streams the range back on ``registry/resp/<device>`` as one binary frame per
chunk (``chunk`` bytes each, the last one shorter; a request without ``chunk`` is answered
with one frame of ``length`` bytes). A frame is a fixed big-endian header, three short
strings and the chunk bytes::

    "EA" | version (1 B) | status (2 B) | id length (1 B) | path length (2 B)
         | reason length (2 B) | offset (8 B) | total (8 B) | retry after, ms (4 B)
         | crc32 of the chunk (4 B) | id | path | reason | chunk bytes

Frames are built and parsed with ``struct`` (no JSON, no per-chunk allocation beyond the
frame itself: the registry reads the chunk straight into the frame buffer, the device keeps a
``memoryview`` of it).

``status`` borrows HTTP's numbers because ngclient needs them: 200 a chunk, 404 no such file
(ngclient's root walk stops at 404), 429 too many requests (retry after ``retry_after`` s),
400 a bad request, 503 busy. The CRC-32 catches corruption per chunk and lets a persisted
partial file be re-checked after a power loss; it is not a defence against forgery (anyone who
can forge a frame can compute any checksum, sha256 included). Trust comes only from TUF, which
verifies the length and hashes of the whole file against signed metadata at the end. Anything
that does not decode is ``None``, never an error that could stop a transfer.

This is the registry's part of the wire contract (:mod:`edge_agent.wire`): the request's JSON
is parsed and version-checked by the wire's decoder (``v`` absent means 1), and the refusal
reason in a frame is cleaned like any text from the wire. The frames stay ``struct``-packed
binary rather than typed JSON documents: a chunk must not cost a JSON encode or a copy.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from edge_agent.errors import WireError
from edge_agent.wire._clean import clean_text, dumps, loads_object
from edge_agent.wire._document import SCHEMA_VERSION, check_version

MIN_CHUNK_BYTES = 256
"""The smallest chunk a registry answers: below it a frame's overhead dwarfs its bytes (a
16 MiB range at 1-byte chunks would be 16.7 million frames). Devices' ``chunk_bytes`` has the
same floor."""
MAX_CHUNK_BYTES = 1 << 20
"""The largest chunk a frame may carry (far below Mosquitto's default message size limit)."""
MAX_RANGE_BYTES = 256 << 20
"""The longest range one request may name (registries enforce a smaller limit of their own)."""
MAX_REQUEST_BYTES = 2048
_ID = re.compile(r"^[0-9a-f]{8,64}$")
_ROOTS = ("metadata", "targets")

OK = 200
BAD_REQUEST = 400
NOT_FOUND = 404
TOO_MANY_REQUESTS = 429
BUSY = 503
STATUSES = (OK, BAD_REQUEST, NOT_FOUND, TOO_MANY_REQUESTS, BUSY)

_MAGIC = b"EA"
_VERSION = 1
_HEADER = struct.Struct(">2sBHBHHQQII")
HEADER_BYTES = _HEADER.size
"""Size of the fixed part of a frame header."""
_MAX_REASON = 300


@dataclass(frozen=True)
class ChunkRequest:
    """A device asks for ``length`` bytes of ``path`` from ``offset``, in ``chunk``-byte frames.

    ``chunk`` 0 means one frame of ``length`` bytes.
    """

    id: str
    path: str
    offset: int
    length: int
    chunk: int = 0

    @property
    def frame_bytes(self) -> int:
        """Bytes per answering frame."""
        return self.chunk or self.length

    def encode(self) -> bytes:
        """The request's JSON payload."""
        body: dict[str, object] = {
            "v": SCHEMA_VERSION,
            "id": self.id,
            "path": self.path,
            "offset": self.offset,
            "length": self.length,
        }
        if self.chunk:
            body["chunk"] = self.chunk
        return dumps(body)


@dataclass(frozen=True)
class ChunkResponse:
    """One frame: a chunk of a file (status 200), or the registry's refusal of a request.

    ``data`` is ``bytes`` when built, a ``memoryview`` into the received frame when decoded.
    """

    id: str
    path: str
    offset: int
    status: int
    total: int = 0
    data: bytes | memoryview = b""
    reason: str = ""
    retry_after: float = 0.0
    crc32: int | None = None  # of ``data``; computed by encode() when None

    def encode(self) -> bytes:
        """The binary frame: header, then the chunk bytes."""
        crc = zlib.crc32(self.data) if self.crc32 is None else self.crc32
        header = encode_header(
            self.id,
            self.path,
            self.offset,
            self.status,
            self.total,
            crc,
            self.reason,
            self.retry_after,
        )
        return header + bytes(self.data)


def header_bytes(request_id: str, path: str, reason: str = "") -> int:
    """The header length of a frame answering ``request_id`` for ``path``."""
    return HEADER_BYTES + len(request_id) + len(path.encode()) + len(_reason(reason))


def encode_header(
    request_id: str,
    path: str,
    offset: int,
    status: int,
    total: int,
    crc32: int,
    reason: str = "",
    retry_after: float = 0.0,
) -> bytes:
    """A frame header; the frame is this followed by the chunk bytes (to its end).

    The registry uses it to build a frame around a chunk read straight into the frame buffer.
    """
    ident, where, why = request_id.encode(), path.encode(), _reason(reason)
    fixed = _HEADER.pack(
        _MAGIC,
        _VERSION,
        status,
        len(ident),
        len(where),
        len(why),
        offset,
        total,
        min(int(retry_after * 1000), 3_600_000),
        crc32 & 0xFFFFFFFF,
    )
    return fixed + ident + where + why


def _reason(reason: str) -> bytes:
    return reason.encode()[:_MAX_REASON]


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
    if len(payload) > MAX_REQUEST_BYTES:
        return None
    try:
        raw = loads_object(payload, "chunk request")
        check_version(raw, "chunk request")
    except WireError:
        return None
    request_id, path = raw.get("id"), safe_path(raw.get("path"))
    offset, length, chunk = raw.get("offset"), raw.get("length"), raw.get("chunk", 0)
    if not isinstance(request_id, str) or not _ID.match(request_id) or path is None:
        return None
    if type(offset) is not int or type(length) is not int or type(chunk) is not int:
        return None
    if offset < 0 or not 0 < length <= MAX_RANGE_BYTES or chunk < 0:
        return None
    return ChunkRequest(request_id, path, offset, length, chunk)


def decode_response(frame: bytes) -> ChunkResponse | None:
    """A well-formed frame whose chunk matches its CRC-32, or None.

    The returned ``data`` is a view into ``frame`` (no copy).
    """
    if len(frame) < HEADER_BYTES:
        return None
    (magic, version, status, id_len, path_len, reason_len, offset, total, retry_ms, crc) = (
        _HEADER.unpack_from(frame)
    )
    if magic != _MAGIC or version != _VERSION or status not in STATUSES:
        return None
    if reason_len > _MAX_REASON or retry_ms > 3_600_000:
        return None
    data_start = HEADER_BYTES + id_len + path_len + reason_len
    if len(frame) < data_start or len(frame) - data_start > MAX_CHUNK_BYTES:
        return None
    view = memoryview(frame)
    try:
        request_id = str(view[HEADER_BYTES : HEADER_BYTES + id_len], "ascii")
        path = str(view[HEADER_BYTES + id_len : HEADER_BYTES + id_len + path_len], "utf-8")
        reason = clean_text(str(view[data_start - reason_len : data_start], "utf-8", "replace"))
    except UnicodeDecodeError:
        return None
    data = view[data_start:]
    if zlib.crc32(data) != crc:
        return None
    return ChunkResponse(
        request_id, path, offset, status, total, data, reason, retry_ms / 1000, crc
    )
