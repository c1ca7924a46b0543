"""What int8 quantization buys and costs on the sample models, on both runtimes.

For each model family and runtime: file size ratio int8/fp32, latency ratio int8/fp32 (median
of interleaved single-sample runs through edge-agent's runtime layer, one thread), and the
accuracy of both on the held-out digits. Targets (issue 3): int8 TFLite <= 35 % of fp32 size,
int8 ONNX <= 50 %, accuracy drop <= 1 point, int8 faster than fp32 on LiteRT; the ONNX Runtime
latency ratio is reported whichever way it goes.

Usage: python -m benchmarks.quantization [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from edge_agent.config import RuntimeSettings
from edge_agent.demo.samples import samples_dir
from edge_agent.runtime import load_model
from edge_agent.runtime.tools.inputs import fit_to_spec


def held_out(family: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(samples_dir() / "digits" / "test_set.npz") as data:
        x, y = data["x"], data["y"]
    if family == "digits32":  # the 8x8 digits upscaled as models/build_samples.py does
        import cv2

        x = np.stack(
            [
                cv2.cvtColor(
                    cv2.resize(img[:, :, 0], (32, 32), interpolation=cv2.INTER_LINEAR),
                    cv2.COLOR_GRAY2RGB,
                )
                for img in x
            ]
        ).astype(np.float32)
    return x.astype(np.float32), y


def measure(path: Path, x: np.ndarray, y: np.ndarray, runs: int) -> dict[str, float]:
    model = load_model(path, RuntimeSettings(threads=1, warmup_runs=5))
    spec = model.inputs[0]
    samples = [fit_to_spec(x[i : i + 1], spec) for i in range(len(x))]
    correct = 0
    for sample, label in zip(samples, y, strict=True):
        (scores,) = model.run({spec.name: sample}).values()
        correct += int(np.argmax(scores)) == int(label)
    timings = []
    for i in range(runs):
        start = time.perf_counter()
        model.run({spec.name: samples[i % len(samples)]})
        timings.append(time.perf_counter() - start)
    model.close()
    return {
        "bytes": path.stat().st_size,
        "accuracy": correct / len(y),
        "p50_us": float(np.median(timings) * 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="int8 vs fp32 on the sample models")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    results = []
    for family in ("digits", "digits32"):
        x, y = held_out(family)
        for suffix, runtime in ((".tflite", "LiteRT"), (".onnx", "ONNX Runtime")):
            folder = samples_dir() / family
            fp32 = measure(folder / f"{family}_fp32{suffix}", x, y, args.runs)
            int8 = measure(folder / f"{family}_int8{suffix}", x, y, args.runs)
            size_ratio = int8["bytes"] / fp32["bytes"]
            target = 0.35 if suffix == ".tflite" else 0.50
            results.append(
                {
                    "model": family,
                    "runtime": runtime,
                    "fp32_bytes": fp32["bytes"],
                    "int8_bytes": int8["bytes"],
                    "size_ratio": round(size_ratio, 3),
                    "size_target": target,
                    "fp32_p50_us": round(fp32["p50_us"], 1),
                    "int8_p50_us": round(int8["p50_us"], 1),
                    "latency_ratio_int8_over_fp32": round(int8["p50_us"] / fp32["p50_us"], 3),
                    "fp32_accuracy": round(fp32["accuracy"], 4),
                    "int8_accuracy": round(int8["accuracy"], 4),
                    "accuracy_drop_points": round(100 * (fp32["accuracy"] - int8["accuracy"]), 2),
                    "size_within_target": size_ratio <= target,
                    "accuracy_within_target": fp32["accuracy"] - int8["accuracy"] <= 0.01,
                }
            )
    print(
        json.dumps(
            {
                "benchmark": "quantization",
                "machine": platform.machine(),
                "threads": 1,
                "runs": args.runs,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
