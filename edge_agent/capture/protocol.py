"""The sample upload on ``ea/v1/<device>/samples``: chunking and reassembly.

The header is the wire contract's :class:`edge_agent.wire.chunks.SampleChunkHeader`.

A sample's payload (the stored ``.npz`` bytes) travels in chunks, one MQTT message each::

    <header JSON, UTF-8> <newline byte> <chunk bytes>

    header = {"v": 1, "kind": "sample", "id": "<32 hex>", "offset": 0, "size": 12345,
              "sha256": "<hex of the whole payload>", "meta": {...}}   # meta in offset 0 only

Chunks are addressed by byte *offset*, not by number, so an upload resumed after a restart
with another ``chunk_bytes`` still fits together. Delivery is at least once (a chunk whose
PUBACK was lost is sent again); the receiver dedupes by (id, offset) and ignores ids it has
already completed (:class:`Reassembler`), and checks the sha256 before accepting a sample.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from edge_agent.wire.chunks import SampleChunkHeader, decode_sample_chunk, encode_sample_chunk

VERSION = 1


def encode_chunk(header: SampleChunkHeader | dict[str, Any], data: bytes) -> bytes:
    """One message: header line + chunk bytes (the header is the wire's typed document)."""
    if isinstance(header, dict):
        header = SampleChunkHeader.model_validate(header)
    return encode_sample_chunk(header, data)


def decode_chunk(payload: bytes) -> tuple[SampleChunkHeader, bytes]:
    """(header, data) of one message; WireError (a ValueError) says what is malformed."""
    return decode_sample_chunk(payload)


@dataclass
class _Partial:
    size: int
    sha256: str
    chunks: dict[int, bytes] = field(default_factory=dict)
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReceivedSample:
    """A complete, verified sample."""

    id: str
    payload: bytes
    meta: dict[str, Any]


class Reassembler:
    """Receiver side: collects chunks into verified samples, each delivered once."""

    def __init__(self) -> None:
        """Nothing received yet."""
        self._partial: dict[str, _Partial] = {}
        self.completed: set[str] = set()
        self.duplicates = 0
        self.corrupt = 0

    def add(self, payload: bytes) -> ReceivedSample | None:
        """Feed one message; returns the sample when this chunk completes it, else None."""
        header, data = decode_chunk(payload)
        sample_id = header.id
        if sample_id in self.completed:
            self.duplicates += 1
            return None
        partial = self._partial.setdefault(sample_id, _Partial(header.size, header.sha256))
        if header.offset in partial.chunks:
            self.duplicates += 1
        partial.chunks[header.offset] = data
        if header.meta is not None:
            partial.meta = dict(header.meta)
        assembled = self._assemble(partial)
        if assembled is None:
            return None
        del self._partial[sample_id]
        if hashlib.sha256(assembled).hexdigest() != partial.sha256:
            self.corrupt += 1
            return None
        self.completed.add(sample_id)
        return ReceivedSample(sample_id, assembled, partial.meta or {})

    @staticmethod
    def _assemble(partial: _Partial) -> bytes | None:
        out = bytearray()
        for offset in sorted(partial.chunks):
            if offset > len(out):
                return None  # a gap
            data = partial.chunks[offset]
            out += data[len(out) - offset :]
        return bytes(out) if len(out) == partial.size else None
