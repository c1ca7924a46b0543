"""Tensors between the agent and its inference worker through one shared-memory region.

The agent (parent) owns a region per isolated model, created with
``multiprocessing.shared_memory`` (so the resource tracker unlinks it even if the agent is
killed), sized from the model's tensors and reused by every request. Per request the parent
copies the inputs into the region and sends only their places (``Slot``: name, dtype, shape,
offset) over the pipe; the worker maps the region once, wraps the inputs as arrays without
copying, runs, and copies its outputs behind the inputs. Outputs that do not fit go back
pickled, and the parent grows the region for the next request: a dynamic shape costs one slow
request, never a failure.

The worker maps the region as a plain file under ``/dev/shm`` (Linux) instead of attaching a
``SharedMemory``: attaching would register the name with the resource tracker it shares with the
agent, and its exit would then unlink or warn about a region the agent still uses.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import pickle
from collections.abc import Iterable, Mapping, Sequence
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edge_agent.runtime.base import TensorSpec

ALIGN = 64
"""Every tensor starts on a cache line (and any SIMD alignment a runtime wants)."""
MIN_BYTES = 64 << 10
SHM_ROOT = Path("/dev/shm")


class Slot(NamedTuple):
    """Where one tensor lies in the region: what the pipe carries instead of the data."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int


def aligned(size: int) -> int:
    """``size`` rounded up to the next multiple of ALIGN."""
    return -(-size // ALIGN) * ALIGN


def spec_bytes(specs: Iterable[TensorSpec]) -> int:
    """Bytes the tensors take, aligned, dynamic dimensions counted as 1 (grown when seen)."""
    total = 0
    for spec in specs:
        count = math.prod(max(int(d), 1) for d in spec.shape)
        total += aligned(count * np.dtype(spec.dtype).itemsize)
    return total


def layout(arrays: Mapping[str, np.ndarray], start: int = 0) -> tuple[list[Slot], int]:
    """Places for ``arrays`` packed from ``start``; returns the slots and the end offset."""
    slots: list[Slot] = []
    offset = start
    for name, array in arrays.items():
        slots.append(Slot(name, array.dtype.str, array.shape, offset))
        offset += aligned(array.nbytes)
    return slots, offset


def signature(arrays: Mapping[str, np.ndarray]) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    """Names, dtypes and shapes: equal signatures share a layout (and its cached message)."""
    return tuple((name, array.dtype.str, array.shape) for name, array in arrays.items())


def encode(message: tuple[Any, ...]) -> bytes:
    """A control message as bytes (plain pickle: both ends are this package)."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


decode = pickle.loads


def _view(buffer: Any, slot: Slot) -> np.ndarray:
    view: np.ndarray = np.ndarray(slot.shape, np.dtype(slot.dtype), buffer, slot.offset)
    return view


def shm_ready(array: object) -> bool:
    """Whether a value can travel as raw bytes (numbers and booleans, not objects/strings)."""
    return isinstance(array, np.ndarray) and array.dtype.kind in "biuf"


class Region:
    """The agent's side: one region, written with inputs and read for outputs."""

    def __init__(self, size: int) -> None:
        self.size = max(aligned(size), MIN_BYTES)
        self._shm: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            create=True, size=self.size
        )
        self.name = self._shm.name

    def views(self, slots: Sequence[Slot]) -> list[np.ndarray]:
        """Arrays over the region at ``slots`` (no copy; drop them before ``close``)."""
        assert self._shm is not None, "the region was closed"
        return [_view(self._shm.buf, slot) for slot in slots]

    def close(self) -> None:
        """Unmap and unlink the region (idempotent)."""
        if self._shm is None:
            return
        shm, self._shm = self._shm, None
        with contextlib.suppress(BufferError):  # a view still alive: the GC unmaps it later
            shm.close()
        shm.unlink()


class WorkerMapping:
    """The worker's side: the agent's region, mapped from /dev/shm, remapped when it changes."""

    def __init__(self) -> None:
        self.name = ""
        self.size = 0
        self._map: mmap.mmap | None = None

    def attach(self, name: str, size: int) -> None:
        """Map region ``name`` unless it is the one already mapped."""
        if name == self.name:
            return
        self.close()
        with open(SHM_ROOT / name.lstrip("/"), "r+b") as file:
            self._map = mmap.mmap(file.fileno(), size)
        self.name, self.size = name, size

    def views(self, slots: Sequence[Slot]) -> list[np.ndarray]:
        """Arrays over the mapping at ``slots`` (no copy)."""
        assert self._map is not None
        return [_view(self._map, slot) for slot in slots]

    def close(self) -> None:
        """Unmap (the agent owns and unlinks the region)."""
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a runtime still holds an input: GC unmaps
                self._map.close()
            self._map = None
            self.name, self.size = "", 0
