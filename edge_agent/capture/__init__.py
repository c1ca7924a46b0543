"""Sampled capture: decide per inference, store on disk (bounded), upload in the background.

See docs/capture.md.

``SampleCapture`` observes served models; ``SampleStore`` is the on-disk store (SQLite WAL
index + compressed ``.npz`` payloads); ``SampleUploader`` sends samples over MQTT; the wire
format and its receiver side are in ``protocol``.
"""

from edge_agent.capture.capturer import SampleCapture
from edge_agent.capture.protocol import Reassembler, ReceivedSample, decode_chunk, encode_chunk
from edge_agent.capture.store import Sample, SampleInfo, SampleStore
from edge_agent.capture.uploader import SampleUploader
from edge_agent.errors import SampleStoreError

__all__ = [
    "Reassembler",
    "ReceivedSample",
    "Sample",
    "SampleCapture",
    "SampleInfo",
    "SampleStore",
    "SampleStoreError",
    "SampleUploader",
    "decode_chunk",
    "encode_chunk",
]
