"""What edge-agent's run path costs on top of the bare runtime call, per backend and model.

For each model: one backend is loaded through edge-agent; the raw call uses the very same
interpreter / session (LiteRT: set_tensor, invoke, get_tensor; ORT: session.run), so the only
difference is edge-agent's own work (input checks, quantization, output naming). Blocks of raw
and edge-agent calls are interleaved so that drift in machine load hits both alike; the
medians of the per-block means are compared.

Target (issue 2): overhead <= max(3 % of the raw invoke time, 30 us) per call.

Usage: python benchmarks/runtime_overhead.py [--rounds 30] [--block 200] [--threads 1]
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.config import RuntimeSettings
from edge_agent.runtime import load_model
from edge_agent.runtime.tools.bench import random_inputs

MODELS = Path(__file__).resolve().parent.parent / "models"
CASES = [
    "digits/digits_fp32.tflite",
    "digits/digits_int8.tflite",
    "digits32/digits32_fp32.tflite",
    "digits32/digits32_int8.tflite",
    "digits/digits_fp32.onnx",
    "digits32/digits32_fp32.onnx",
    "digits32/digits32_int8.onnx",
]


def raw_call(model: Any, feed: dict[str, np.ndarray]) -> Any:
    """The bare runtime call on the backend's own interpreter / session."""
    if model.format == "tflite":
        interpreter = model.interpreter
        inputs = [(d["index"], feed[d["name"]]) for d in interpreter.get_input_details()]
        outputs = [d["index"] for d in interpreter.get_output_details()]

        def run_raw() -> list[np.ndarray]:
            for index, array in inputs:
                interpreter.set_tensor(index, array)
            interpreter.invoke()
            return [interpreter.get_tensor(index) for index in outputs]

        return run_raw
    session = model.session

    def run_session() -> list[np.ndarray]:
        result: list[np.ndarray] = session.run(None, feed)
        return result

    return run_session


def measure(case: str, threads: int, rounds: int, block: int) -> dict[str, Any]:
    model = load_model(MODELS / case, RuntimeSettings(threads=threads, warmup_runs=5))
    feed = random_inputs(model.inputs)
    # the raw call gets inputs already in the runtime's dtype; edge-agent gets the same arrays
    raw = raw_call(model, feed)

    def agent() -> None:
        model.run(feed)

    clock = time.perf_counter
    raw_means, agent_means = [], []
    for _ in range(3):  # settle caches
        raw()
        agent()
    for _ in range(rounds):
        start = clock()
        for _ in range(block):
            raw()
        raw_means.append((clock() - start) / block)
        start = clock()
        for _ in range(block):
            agent()
        agent_means.append((clock() - start) / block)
    raw_us = float(np.median(raw_means) * 1e6)
    agent_us = float(np.median(agent_means) * 1e6)
    overhead_us = agent_us - raw_us
    budget_us = max(0.03 * raw_us, 30.0)
    model.close()
    return {
        "model": case,
        "backend": model.format,
        "delegate": model.delegate.name,
        "raw_us": round(raw_us, 2),
        "edge_agent_us": round(agent_us, 2),
        "overhead_us": round(overhead_us, 2),
        "overhead_pct": round(100 * overhead_us / raw_us, 2),
        "budget_us": round(budget_us, 2),
        "within_target": overhead_us <= budget_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    results = [measure(case, args.threads, args.rounds, args.block) for case in CASES]
    print(
        json.dumps(
            {
                "benchmark": "runtime_overhead",
                "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                "python": platform.python_version(),
                "threads": args.threads,
                "rounds": args.rounds,
                "block": args.block,
                "results": results,
                "all_within_target": all(r["within_target"] for r in results),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
