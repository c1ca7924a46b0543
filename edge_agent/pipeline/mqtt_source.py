"""Tensors arriving on an MQTT topic become frames.

Payload formats (decided by the first bytes, see :func:`decode_tensor_payload`):

* ``.npy`` bytes (``np.save``): one array, fed to the model's only input;
* ``.npz`` bytes (``np.savez``): one array per input name;
* JSON ``{"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": [...]}]}``
  (the Open Inference Protocol's JSON tensor form).

Pickled object arrays are refused (``allow_pickle=False``): a payload can never run code.
A payload that cannot be decoded is counted and logged, never queued; the connection carries on.
Messages are live data, so the queue drops the oldest when inference falls behind.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from typing import Any

import numpy as np

from edge_agent.config import MqttSource as MqttSourceSettings
from edge_agent.errors import InputError
from edge_agent.pipeline.frames import Frame, FrameQueue
from edge_agent.transport.client import Message, MqttClient

log = logging.getLogger(__name__)

SINGLE_INPUT = ""
"""Key of an array that is meant for the model's only input (a ``.npy`` payload)."""

_OIP_DTYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


def decode_tensor_payload(payload: bytes, max_bytes: int) -> dict[str, np.ndarray]:
    """Decode one message into named arrays; InputError says what is wrong with it."""
    if len(payload) > max_bytes:
        raise InputError(f"payload of {len(payload)} bytes is over the {max_bytes} byte limit")
    if payload.startswith(b"\x93NUMPY"):
        try:
            array = np.load(io.BytesIO(payload), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"not a valid .npy payload: {exc}") from None
        return {SINGLE_INPUT: _numeric(array, "the .npy array")}
    if payload.startswith(b"PK"):
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
                arrays = {k: _numeric(archive[k], k) for k in archive.files}
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"not a valid .npz payload: {exc}") from None
        if not arrays:
            raise InputError("the .npz payload holds no arrays")
        return arrays
    return _decode_json(payload)


def _numeric(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise InputError(f"{what}: dtype {array.dtype} is not a numeric tensor")
    return array


def _decode_json(payload: bytes) -> dict[str, np.ndarray]:
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"payload is neither .npy, .npz nor JSON ({exc}); see docs/pipelines.md"
        ) from None
    inputs = document.get("inputs") if isinstance(document, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise InputError('JSON payload needs "inputs": [{"name", "shape", "datatype", "data"}]')
    arrays: dict[str, np.ndarray] = {}
    for i, item in enumerate(inputs):
        try:
            name = str(item["name"])
            dtype = _OIP_DTYPES[str(item["datatype"]).upper()]
            shape = [int(d) for d in item["shape"]]
            array: np.ndarray = np.asarray(item["data"], dtype=dtype)
            arrays[name] = array.reshape(shape)
        except KeyError as exc:
            raise InputError(f"inputs[{i}]: missing or unknown {exc}") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"inputs[{i}]: {exc}") from None
    return arrays


class MqttTensorSource:
    """Frames from tensors published on a topic."""

    def __init__(
        self, name: str, settings: MqttSourceSettings, client: MqttClient, queue_size: int
    ) -> None:
        """Subscribe through ``client`` (owned by the caller) on :meth:`start`."""
        self.name = name
        self.settings = settings
        self.client = client
        self.queue = FrameQueue(queue_size)
        self.received = 0
        self.rejected = 0
        self.last_error = ""
        self._lock = threading.Lock()

    def start(self) -> None:
        """Subscribe (kept across reconnects by the client)."""
        self.client.subscribe(self.settings.topic, self._on_message, qos=self.settings.qos)

    def _on_message(self, message: Message) -> None:
        try:
            arrays = decode_tensor_payload(message.payload, self.settings.max_payload_bytes)
        except InputError as exc:
            with self._lock:
                self.rejected += 1
                count = self.rejected
            self.last_error = f"{message.topic}: {exc}"
            if count == 1 or count % 100 == 0:
                log.warning(
                    "mqtt source %s: rejected a message (%d so far): %s",
                    self.name,
                    count,
                    self.last_error,
                )
            return
        with self._lock:
            self.received += 1
            frame_id = f"{message.topic}#{self.received}"
        self.queue.put(Frame(arrays, frame_id, meta={"topic": message.topic}))

    def read(self, timeout: float) -> Frame | None:
        """The next decoded message."""
        return self.queue.get(timeout)

    @property
    def finished(self) -> bool:
        """A subscription never finishes."""
        return False

    def stats(self) -> dict[str, Any]:
        """Messages received and rejected, drops, broker connection."""
        return {
            "frames_read": self.received,
            "rejected": self.rejected,
            "dropped": self.queue.dropped,
            "queue_depth": len(self.queue),
            "state": "subscribed" if self.client.connected else "waiting for broker",
            "last_error": self.last_error,
        }

    def stop(self) -> None:
        """Unsubscribe."""
        self.queue.close()
        try:
            self.client.unsubscribe(self.settings.topic)
        except Exception as exc:  # the broker may be gone; the subscription goes with it
            log.debug("mqtt source %s: unsubscribe failed: %s", self.name, exc)
