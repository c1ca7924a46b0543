"""The sample upload's chunk header on ``ea/v1/<device>/samples``.

A sample's payload (the stored ``.npz`` bytes) travels in chunks, one MQTT message each::

    <header JSON, UTF-8> <newline byte> <chunk bytes>

    header = {"v": 1, "kind": "sample", "id": "<32 hex>", "offset": 0, "size": 12345,
              "sha256": "<hex of the whole payload>", "meta": {...}}   # meta in offset 0 only

Chunks are addressed by byte *offset*, so an upload resumed with another chunk size still fits
together; reassembly lives in :mod:`edge_agent.capture.protocol`. (The registry's binary frames
are the other chunk protocol; their fixed header is :mod:`edge_agent.trust.protocol`.)
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, field_validator

from edge_agent.errors import WireError
from edge_agent.wire._clean import JsonObject, Name, Number, Short, loads_object, number, text
from edge_agent.wire._document import Document, Part

MAX_SAMPLE_BYTES = 256 << 20
"""The largest sample a header may claim (far above any capture store's per-sample limit)."""
MAX_HEADER_BYTES = 64 * 1024
"""A header line longer than this is refused before it is parsed."""
_ID = re.compile(r"^[0-9A-Za-z_.-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]{1,128}$")


def _whole(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"{str(value)[:40]!r} is not a whole number")
    if not 0 <= value <= MAX_SAMPLE_BYTES:
        raise ValueError(f"{value} is outside 0..{MAX_SAMPLE_BYTES}")
    return value


def _prediction(value: Any) -> int | None:
    return value if type(value) is int and abs(value) < 2**62 else None


class SampleMeta(Part):
    """What the first chunk says about the sample (the fields the monitor keeps)."""

    created: Number = None
    model: Name = None
    version: Name = None
    delegate: Short = None
    latency_s: Number = None
    strategy: Short = None
    prediction: Annotated[int | None, BeforeValidator(_prediction)] = None
    confidence: Annotated[float | None, BeforeValidator(lambda v: number(v, -1e6, 1e6))] = None


class SampleChunkHeader(Document):
    """The header of one chunk; ``meta`` only on the chunk at offset 0."""

    WHAT = "sample chunk header"

    kind: Short = "sample"
    id: str
    offset: Annotated[int, BeforeValidator(_whole)]
    size: Annotated[int, BeforeValidator(_whole)]
    sha256: str
    meta: JsonObject = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> str:
        if not isinstance(value, str) or not _ID.match(value):
            raise ValueError(f"sample id {text(value, 40)!r} is not 1-64 letters, digits, _.-")
        return value

    @field_validator("sha256", mode="before")
    @classmethod
    def _digest(cls, value: Any) -> str:
        if not isinstance(value, str) or not _HEX.match(value):
            raise ValueError("sha256 is not lowercase hex")
        return value

    def sample_meta(self) -> SampleMeta | None:
        """The typed metadata (None on chunks after the first)."""
        return None if self.meta is None else SampleMeta.model_validate(self.meta)


def encode_sample_chunk(header: SampleChunkHeader, data: bytes | memoryview) -> bytes:
    """One message: header line + chunk bytes."""
    return header.encode() + b"\n" + bytes(data)


def decode_sample_chunk(payload: bytes) -> tuple[SampleChunkHeader, bytes]:
    """(header, data) of one message; WireError ``wrong_shape`` says what is malformed."""
    head, sep, data = payload.partition(b"\n")
    if not sep:
        raise WireError("wrong_shape", "sample chunk without a header line")
    if len(head) > MAX_HEADER_BYTES:
        raise WireError("wrong_shape", f"sample chunk header of {len(head)} bytes")
    try:
        document = loads_object(head, "sample chunk header")
    except WireError as exc:
        raise WireError("wrong_shape", str(exc)) from None
    if "v" not in document:
        raise WireError("wrong_shape", "sample chunk header without a version 'v'")
    header = SampleChunkHeader.from_object(document, cleaned=True)
    if header.offset + len(data) > header.size:
        raise WireError(
            "wrong_shape",
            f"sample chunk {header.offset}+{len(data)} does not fit size {header.size}",
        )
    return header, data
