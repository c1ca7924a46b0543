"""What crash containment costs: inference in a supervised worker process vs inline.

Same model, same settings, interleaved blocks; the difference is the round trip to the worker:
inputs copied into the shared-memory region, a small control message each way over the pipe,
outputs copied back. Reported for the sample models (64-byte and 1 KB inputs) and a
1x3x256x256 float32 input (786 KB). Targets (issue 17): added p50 <= 150 us at 786 KB, <= 50 us
for small tensors. The load average is printed with the numbers: on a shared machine they move.

Usage: python benchmarks/isolation.py [--rounds 20] [--block 50]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from benchmarks._models import image_classifier
from edge_agent.config import RuntimeSettings
from edge_agent.runtime import load_model
from edge_agent.runtime.tools.bench import random_inputs
from edge_agent.serving.isolation import IsolatedBackend

MODELS = Path(__file__).resolve().parent.parent / "models"
TARGET_LARGE_US = 150.0
TARGET_SMALL_US = 50.0
SMALL_BYTES = 4096


def measure(path: Path, rounds: int, block: int) -> dict[str, object]:
    settings = RuntimeSettings(threads=1)
    inline = load_model(path, settings)
    isolated = IsolatedBackend(path, settings)
    feed = random_inputs(inline.inputs)
    samples: dict[str, list[float]] = {"inline": [], "process": []}
    for backend in (inline, isolated):
        for _ in range(20):
            backend.run(feed)
    for _ in range(rounds):
        for name, backend in (("inline", inline), ("process", isolated)):
            for _ in range(block):
                start = time.perf_counter()
                backend.run(feed)
                samples[name].append(time.perf_counter() - start)
    inline.close()
    isolated.close()
    inline_us = float(np.percentile(samples["inline"], 50) * 1e6)
    process_us = float(np.percentile(samples["process"], 50) * 1e6)
    input_bytes = int(sum(a.nbytes for a in feed.values()))
    target = TARGET_SMALL_US if input_bytes <= SMALL_BYTES else TARGET_LARGE_US
    added = process_us - inline_us
    return {
        "model": path.name,
        "input_bytes": input_bytes,
        "inline_p50_us": round(inline_us, 1),
        "process_p50_us": round(process_us, 1),
        "added_p50_us": round(added, 1),
        "inline_p99_us": round(float(np.percentile(samples["inline"], 99) * 1e6), 1),
        "process_p99_us": round(float(np.percentile(samples["process"], 99) * 1e6), 1),
        "target_added_p50_us": target,
        "within_target": added <= target,
    }


def _echo(conn: Connection) -> None:
    while message := conn.recv_bytes():
        conn.send_bytes(message)


def floors(rounds: int = 2000) -> dict[str, float]:
    """What the machine allows right now: a bare pipe round trip and a 786 KB copy (p50)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_echo, args=(child,), daemon=True)
    process.start()
    message = b"x" * 200  # about the size of a control message
    trips = []
    for _ in range(rounds):
        start = time.perf_counter()
        parent.send_bytes(message)
        parent.recv_bytes()
        trips.append(time.perf_counter() - start)
    parent.send_bytes(b"")
    process.join(5)
    source = np.random.default_rng(0).random(786432 // 4, dtype=np.float32)
    target = np.empty_like(source)
    copies = []
    for _ in range(rounds // 4):
        start = time.perf_counter()
        np.copyto(target, source)
        copies.append(time.perf_counter() - start)
    return {
        "pipe_round_trip_p50_us": round(float(np.percentile(trips, 50) * 1e6), 1),
        "copy_786KB_p50_us": round(float(np.percentile(copies, 50) * 1e6), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="cost of process isolation per inference")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=50)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            MODELS / "digits" / "digits_int8.tflite",
            MODELS / "digits32" / "digits32_int8.tflite",
            MODELS / "digits32" / "digits32_fp32.onnx",
            image_classifier(Path(tmp) / "classifier256.onnx", 256),
        ]
        results = [measure(path, args.rounds, args.block) for path in cases]
    machine = floors()
    print(
        json.dumps(
            {
                "benchmark": "isolation",
                "transport": "shared memory + control messages over a pipe",
                "rounds": args.rounds,
                "block": args.block,
                "cpus": os.cpu_count(),
                "load_average_before_after": [
                    round(load_before[0], 2),
                    round(os.getloadavg()[0], 2),
                ],
                "floors": machine,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
