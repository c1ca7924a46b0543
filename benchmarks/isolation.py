"""What crash containment costs: inference in a supervised worker process vs inline.

Same model, same settings, interleaved blocks; the difference is the pipe round trip (pickle of
inputs and outputs). Reported for the sample models and a 1x3x224x224 input.

Usage: python benchmarks/isolation.py [--rounds 20] [--block 50]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._models import image_classifier_224
from edge_agent.config import RuntimeSettings
from edge_agent.runtime import load_model
from edge_agent.runtime.tools.bench import random_inputs
from edge_agent.serving.isolation import IsolatedBackend

MODELS = Path(__file__).resolve().parent.parent / "models"


def measure(path: Path, rounds: int, block: int) -> dict[str, object]:
    settings = RuntimeSettings(threads=1)
    inline = load_model(path, settings)
    isolated = IsolatedBackend(path, settings)
    feed = random_inputs(inline.inputs)
    means: dict[str, list[float]] = {"inline": [], "process": []}
    for backend in (inline, isolated):
        for _ in range(5):
            backend.run(feed)
    for _ in range(rounds):
        for name, backend in (("inline", inline), ("process", isolated)):
            start = time.perf_counter()
            for _ in range(block):
                backend.run(feed)
            means[name].append((time.perf_counter() - start) / block)
    inline.close()
    isolated.close()
    inline_us = float(np.median(means["inline"]) * 1e6)
    process_us = float(np.median(means["process"]) * 1e6)
    return {
        "model": path.name,
        "input_bytes": int(sum(a.nbytes for a in feed.values())),
        "inline_us": round(inline_us, 1),
        "process_us": round(process_us, 1),
        "containment_cost_us": round(process_us - inline_us, 1),
        "containment_cost_pct": round(100 * (process_us - inline_us) / inline_us, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="cost of process isolation per inference")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            MODELS / "digits" / "digits_int8.tflite",
            MODELS / "digits32" / "digits32_int8.tflite",
            MODELS / "digits32" / "digits32_fp32.onnx",
            image_classifier_224(Path(tmp) / "classifier224.onnx"),
        ]
        results = [measure(path, args.rounds, args.block) for path in cases]
    print(
        json.dumps(
            {
                "benchmark": "isolation",
                "rounds": args.rounds,
                "block": args.block,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
