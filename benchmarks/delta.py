"""Delta releases: bytes saved for fine-tunes of a sample model, and what rebuilding costs.

Prints JSON with three parts, all from one run:

- ``fine_tunes``: digits32 (fp32 ONNX, 570 KB) fine-tuned three ways: its classifier head
  retrained, the head and the last block, every weight moved. For each: the delta's bytes and
  its fraction of the model (the issue's target: at most 0.30 for a fine-tune), whether
  ``repo add-model`` would publish it (at most ``DELTA_MAX_RATIO``), encode and rebuild time.
- ``delivery``: the head fine-tune delivered over a real Mosquitto by the real registry to a
  device that holds release 1 and to one that does not: the file bytes each fetched (the
  delta, or the model), the bytes the registry served and the update's wall time (on
  loopback a 570 KB model takes well under a second either way: the bytes are the point).
- ``memory``: a 64 MiB synthetic model (float16 weights, 3 regions of 256 KiB changed) rebuilt
  from its delta: the growth of this process's anonymous memory (heap; the three files are
  mapped, page cache) against the model's size.

    .venv/bin/python benchmarks/delta.py [--big-mib 64]

``measure_fine_tunes(work)`` returns the first part, for other benchmarks to include.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from tuf.api.metadata import TargetFile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent import _zstd  # noqa: E402
from edge_agent.config import FetchSettings  # noqa: E402
from edge_agent.delivery.update import UpdateState  # noqa: E402
from edge_agent.trust.device.delta import rebuild  # noqa: E402
from edge_agent.trust.operator.publish import DELTA_MAX_RATIO  # noqa: E402
from tests.fakes.delivery_env import DeliveryEnv  # noqa: E402
from tests.fakes.fine_tune import HEAD, HEAD_AND_LAST_BLOCK, fine_tune  # noqa: E402
from tests.fixtures.mosquitto import start_broker  # noqa: E402

BASE = ROOT / "models" / "digits32" / "digits32_fp32.onnx"
FINE_TUNES: dict[str, tuple[str, ...] | None] = {
    "head": HEAD,
    "head_and_last_block": HEAD_AND_LAST_BLOCK,
    "all_weights": None,
}


def measure_fine_tunes(work: Path) -> dict[str, Any]:
    """Delta size and timings for each fine-tune of digits32."""
    results: dict[str, Any] = {}
    model_bytes = BASE.stat().st_size
    for label, tensors in FINE_TUNES.items():
        tuned = fine_tune(BASE, work / label / BASE.name, tensors)
        started = time.perf_counter()
        data = _zstd.encode(BASE, tuned)
        encode_s = time.perf_counter() - started
        (work / label / "delta").write_bytes(data)
        target = TargetFile.from_file("models/x/2/m.onnx", str(tuned), ["sha256"])
        started = time.perf_counter()
        rebuild(BASE, work / label / "delta", target, work / label / "rebuilt")
        rebuild_s = time.perf_counter() - started
        results[label] = {
            "model_bytes": model_bytes,
            "delta_bytes": len(data),
            "delta_fraction": round(len(data) / model_bytes, 4),
            "bytes_saved": model_bytes - len(data),
            "published": len(data) <= DELTA_MAX_RATIO * model_bytes,
            "encode_s": round(encode_s, 4),
            "rebuild_and_verify_s": round(rebuild_s, 4),
        }
    return results


def measure_delivery(work: Path) -> dict[str, Any]:
    """The head fine-tune over real MQTT: with release 1 held (delta) and without (whole)."""
    broker = start_broker(work / "broker")
    settings = FetchSettings()
    try:
        env = DeliveryEnv(work / "env", broker.url)
        try:
            env.publish(BASE, version="1.0.0")
            holder = env.device("holder", settings)
            assert holder.manager().update("digits").state is UpdateState.ACTIVE
            tuned = fine_tune(BASE, work / "delivery" / BASE.name, HEAD)
            second = env.publish(tuned, version="1.1.0")
            fresh = env.device("fresh", settings)
            out: dict[str, Any] = {
                "model_bytes": second.length,
                "chunk_bytes": settings.chunk_bytes,
            }
            for device, label in ((holder, "with_release_1"), (fresh, "without_release_1")):
                started = time.perf_counter()
                outcome = device.manager().update("digits")
                elapsed = time.perf_counter() - started
                assert outcome.state is UpdateState.ACTIVE, outcome.reason
                active = device.store.active("digits")
                assert active is not None and active.sha256 == second.sha256
                served = env.server.served_bytes(device.device_id, "targets/models/digits/2/")
                out[label] = {
                    "bytes_served": served,
                    "file_bytes_fetched": second.deltas[0].length
                    if label == "with_release_1"
                    else second.length,
                    "update_s": round(elapsed, 3),
                }
            return out
        finally:
            env.close()
    finally:
        broker.stop()


def anon_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_memory(work: Path, size_mib: int) -> dict[str, Any]:
    """Anonymous memory growth while rebuilding a ``size_mib`` model from its delta."""
    rng = np.random.default_rng(7)
    base = work / "big-1.onnx"
    new = work / "big-2.onnx"
    weights = rng.standard_normal(size_mib * 512 * 1024, dtype=np.float32).astype(np.float16)
    base.write_bytes(weights.tobytes())
    changed = bytearray(weights.tobytes())
    del weights
    for offset in (len(changed) // 7, len(changed) // 2, len(changed) - 300_000):
        changed[offset : offset + 256 * 1024] = rng.bytes(256 * 1024)
    new.write_bytes(bytes(changed))
    del changed
    delta = work / "big.delta"
    started = time.perf_counter()
    delta.write_bytes(_zstd.encode(base, new))
    encode_s = time.perf_counter() - started
    target = TargetFile.from_file("models/x/2/big.onnx", str(new), ["sha256"])
    peak = {"value": anon_bytes()}
    before = peak["value"]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["value"] = max(peak["value"], anon_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    rebuild(base, delta, target, work / "big-rebuilt.onnx")
    rebuild_s = time.perf_counter() - started
    stop.set()
    sampler.join()
    model_bytes = new.stat().st_size
    return {
        "model_bytes": model_bytes,
        "delta_bytes": delta.stat().st_size,
        "delta_fraction": round(delta.stat().st_size / model_bytes, 4),
        "encode_s": round(encode_s, 3),
        "rebuild_and_verify_s": round(rebuild_s, 3),
        "anon_growth_bytes": peak["value"] - before,
        "anon_growth_per_model_byte": round((peak["value"] - before) / model_bytes, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=64, help="Synthetic model size (MiB).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-delta-") as tmp:
        work = Path(tmp)
        report = {
            "libzstd_level": _zstd.LEVEL,
            "fine_tunes": measure_fine_tunes(work / "tunes"),
            "delivery": measure_delivery(work / "delivery"),
            "memory": measure_memory(work, args.big_mib),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
