"""`edge-agent bench`: how fast a model runs here, through edge-agent's own run path.

Like TFLite's benchmark_model: load time, first inference, warm-up, then timed runs on random
inputs, with latency percentiles, throughput, memory and the delegate actually used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.config import RuntimeSettings
from edge_agent.runtime import Backend, TensorSpec, load_model
from edge_agent.runtime.base import DYNAMIC


@dataclass
class BenchResult:
    """What ``benchmark`` measured. Times in milliseconds, memory in MiB."""

    model: str
    format: str
    delegate: str
    delegate_detail: str
    skipped_delegates: list[dict[str, str]]
    node_placement: dict[str, int] | None
    threads: int | None
    load_ms: float
    """Includes the load-time warm-up the runtime settings ask for (``warmup_runs``)."""
    first_run_ms: float
    warmup_runs: int
    runs: int
    latency_ms: dict[str, float]
    throughput_per_s: float
    rss_before_load_mib: float
    rss_after_mib: float
    peak_rss_mib: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def random_inputs(specs: tuple[TensorSpec, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the right shapes and dtypes (dynamic dims set to 1), uniformly random."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in specs:
        shape = tuple(1 if d == DYNAMIC else d for d in spec.shape)
        if spec.dtype.kind == "f":
            arrays[spec.name] = rng.random(shape, dtype=np.float32).astype(spec.dtype)
        elif spec.dtype.kind == "b":
            arrays[spec.name] = rng.random(shape) > 0.5
        else:
            info = np.iinfo(spec.dtype)
            arrays[spec.name] = rng.integers(
                max(info.min, -128), min(info.max, 127) + 1, size=shape, dtype=spec.dtype
            )
    return arrays


def latency_summary(samples_s: np.ndarray) -> dict[str, float]:
    """Min / mean / std / p50 / p90 / p95 / p99 / max in milliseconds."""
    ms = samples_s * 1000.0
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
    return {
        "min": float(ms.min()),
        "mean": float(ms.mean()),
        "std": float(ms.std()),
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(ms.max()),
    }


DEFAULT_RUNS = 100
"""Timed inferences of a benchmark."""
DEFAULT_WARMUP_RUNS = 10
"""Untimed inferences before timing (delegate compilation, caches)."""


def benchmark(
    path: Path,
    settings: RuntimeSettings,
    runs: int = DEFAULT_RUNS,
    warmup_runs: int = DEFAULT_WARMUP_RUNS,
    progress: Callable[[int], None] | None = None,
) -> BenchResult:
    """Load ``path`` with ``settings`` and time ``runs`` inferences after ``warmup_runs``."""
    rss_before = _memory_mib("VmRSS")
    start = time.perf_counter()
    model: Backend = load_model(path, settings)
    load_s = time.perf_counter() - start
    try:
        inputs = random_inputs(model.inputs)
        start = time.perf_counter()
        model.run(inputs)
        first_s = time.perf_counter() - start
        for _ in range(warmup_runs):
            model.run(inputs)
        samples = np.empty(runs, dtype=np.float64)
        clock = time.perf_counter
        total_start = clock()
        for index in range(runs):
            start = clock()
            model.run(inputs)
            samples[index] = clock() - start
            if progress is not None:
                progress(1)
        total_s = clock() - total_start
        return BenchResult(
            model=str(path),
            format=model.format,
            delegate=model.delegate.name,
            delegate_detail=model.delegate.detail,
            skipped_delegates=[
                {"name": s.name, "reason": s.reason} for s in model.delegate.skipped
            ],
            node_placement=model.delegate.node_placement,
            threads=settings.threads,
            load_ms=load_s * 1000,
            first_run_ms=first_s * 1000,
            warmup_runs=warmup_runs,
            runs=runs,
            latency_ms=latency_summary(samples),
            throughput_per_s=runs / total_s if total_s > 0 else float("inf"),
            rss_before_load_mib=rss_before,
            rss_after_mib=_memory_mib("VmRSS"),
            peak_rss_mib=_memory_mib("VmHWM"),
        )
    finally:
        model.close()


def _memory_mib(field: str) -> float:
    """A /proc/self/status memory field in MiB (0 where /proc is not there)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0
