"""The shared-memory layout of crash-contained inference (serving/shm.py): packing, alignment,
the worker's view of the agent's region, and that a closed region leaves nothing in /dev/shm."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.runtime.base import DYNAMIC, TensorSpec
from edge_agent.serving.shm import (
    ALIGN,
    MIN_BYTES,
    Region,
    WorkerMapping,
    aligned,
    layout,
    shm_ready,
    signature,
    spec_bytes,
)


def test_tensors_are_packed_on_cache_lines():
    arrays = {"a": np.zeros(3, np.uint8), "b": np.zeros((2, 2), np.float32), "c": np.zeros(0)}
    slots, end = layout(arrays, start=128)
    assert [s.offset for s in slots] == [128, 128 + ALIGN, 128 + 2 * ALIGN]
    assert end == 128 + 2 * ALIGN and all(s.offset % ALIGN == 0 for s in slots)
    assert aligned(0) == 0 and aligned(1) == ALIGN and aligned(ALIGN) == ALIGN


def test_region_size_comes_from_the_specs_with_open_dimensions_as_one():
    specs = (
        TensorSpec("x", (DYNAMIC, 3, 8, 8), np.dtype(np.float32)),
        TensorSpec("y", (1, 10), np.dtype(np.int8)),
    )
    assert spec_bytes(specs) == aligned(3 * 8 * 8 * 4) + aligned(10)


def test_only_plain_numbers_travel_as_raw_bytes():
    assert shm_ready(np.zeros(2, np.float16)) and shm_ready(np.zeros(2, bool))
    assert not shm_ready(np.array(["a"])) and not shm_ready(np.array([object()]))
    assert not shm_ready([1.0])


def test_the_worker_sees_what_the_agent_wrote_and_the_agent_what_the_worker_wrote():
    region = Region(1000)
    worker = WorkerMapping()
    try:
        assert region.size == MIN_BYTES
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        slots, end = layout({"x": x})
        (into,) = region.views(slots)
        np.copyto(into, x)
        worker.attach(region.name, region.size)
        (seen,) = worker.views(slots)
        assert np.array_equal(seen, x)
        out_slots, _ = layout({"y": x[:1]}, end)
        (out,) = worker.views(out_slots)
        out[...] = -1
        assert np.array_equal(region.views(out_slots)[0], -np.ones((1, 4)))
        assert signature({"x": x}) == (("x", "<f4", (3, 4)),)
        del into, seen, out
    finally:
        worker.close()
        region.close()
        region.close()  # idempotent
    assert not (Path("/dev/shm") / region.name.lstrip("/")).exists()
