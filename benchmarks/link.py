"""Model delivery over a shaped link against curl over the same link, and bytes on the wire.

Prints JSON. Runs itself inside a private network namespace (``unshare -n``; root, iproute2,
curl), where the device's port and a plain ``python -m http.server`` share the shaped link on
the loopback (``tc tbf``, one bucket each way: tests/fixtures/link.py). For each rate: the
download of a signed release (``DeviceUpdater.download``, what ``models pull`` and the agent
run after the metadata refresh) against curl fetching the same bytes, interleaved
``--repeat`` times (median). Then, at ``--cut-rate``, the bytes that crossed the link per
model byte with 0, 1 and 5 cuts (every connection through the proxy reset, spread evenly over
the download; the median of ``--repeat`` downloads). Bytes on the wire are IP packets both
ways as the shaped link counted them (headers, acknowledgements and MQTT framing included);
curl's own ratio is printed as the floor any protocol pays on this link.

    .venv/bin/python benchmarks/link.py [--rates-mbit 2 16 100] [--size-mb 5] [--small-mb 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.config import FetchSettings  # noqa: E402
from tests.fixtures.link_world import LinkWorld, cut_at  # noqa: E402

INSIDE = "EDGE_AGENT_LINK_BENCH_INSIDE"


def rate_run(work: Path, rate_mbit: float, size: int, repeat: int) -> dict[str, Any]:
    """Median download and curl seconds over ``repeat`` interleaved rounds at one rate."""
    world = LinkWorld(work, int(rate_mbit * 1000), proxy=False)
    try:
        data, _ = world.publish_model(size)
        pulls, curls, wire, curl_wire = [], [], [], []
        for _ in range(repeat):
            curl = world.curl()
            assert curl["data"] == data
            pull = world.pull("big", FetchSettings())
            assert pull["data"] == data
            curls.append(curl["seconds"])
            pulls.append(pull["seconds"])
            wire.append(pull["wire_bytes"])
            curl_wire.append(curl["wire_bytes"])
        pull_s, curl_s = statistics.median(pulls), statistics.median(curls)
        return {
            "rate_mbit": rate_mbit,
            "model_mb": round(size / 1e6, 2),
            "pull_s": round(pull_s, 3),
            "curl_s": round(curl_s, 3),
            "pull_over_curl": round(pull_s / curl_s, 3),
            "pull_runs_s": [round(s, 2) for s in pulls],
            "curl_runs_s": [round(s, 2) for s in curls],
            "pull_wire_per_model_byte": round(statistics.median(wire) / size, 4),
            "curl_wire_per_model_byte": round(statistics.median(curl_wire) / size, 4),
        }
    finally:
        world.close()


def cut_run(
    work: Path, rate_mbit: float, size: int, cuts: int, settings: FetchSettings, repeat: int
) -> dict[str, Any]:
    """Bytes on the wire per model byte when the link is reset ``cuts`` times mid-download.

    The median of ``repeat`` downloads: where a cut lands (mid-frame, behind a dropped packet)
    varies, and one run says little.
    """
    world = LinkWorld(work, int(rate_mbit * 1000), proxy=True)
    try:
        data, _ = world.publish_model(size)
        marks = [(i + 1) / (cuts + 1) for i in range(cuts)]
        runs = []
        for _ in range(repeat):
            pull = world.pull("big", settings, cut_at(marks, size) if cuts else None)
            assert pull["data"] == data, "delivered bytes differ from the model"
            runs.append(pull)
        assert world.proxy is not None
        wire = [run["wire_bytes"] / size for run in runs]
        return {
            "cuts": world.proxy.cuts // repeat,
            "rate_mbit": rate_mbit,
            "model_mb": round(size / 1e6, 2),
            "seconds": round(statistics.median(run["seconds"] for run in runs), 2),
            "wire_per_model_byte": round(statistics.median(wire), 4),
            "wire_runs": [round(w, 4) for w in wire],
            "payload_down_per_model_byte": round(
                statistics.median(run["proxy_down_bytes"] for run in runs) / size, 4
            ),
            "served_per_model_byte": round(
                statistics.median(run["served_bytes"] for run in runs) / size, 4
            ),
        }
    finally:
        world.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates-mbit", type=float, nargs="+", default=[2, 16, 100])
    parser.add_argument("--size-mb", type=float, default=5.0, help="model size at 16+ Mbit/s")
    parser.add_argument("--small-mb", type=float, default=1.0, help="model size below 16 Mbit/s")
    parser.add_argument("--cut-rate", type=float, default=16.0)
    parser.add_argument("--cuts", type=int, nargs="+", default=[0, 1, 5])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-kib", type=int, default=FetchSettings().chunk_bytes // 1024)
    args = parser.parse_args()
    if os.environ.get(INSIDE) != "1":
        env = {**os.environ, INSIDE: "1", "PYTHONPATH": str(ROOT)}
        sys.exit(subprocess.run(["unshare", "-n", sys.executable, *sys.argv], env=env).returncode)
    work = Path(tempfile.mkdtemp(prefix="link-bench-"))
    try:
        rates = []
        for i, rate in enumerate(args.rates_mbit):
            size = int((args.small_mb if rate < 16 else args.size_mb) * 1e6)
            rates.append(rate_run(work / f"rate-{i}", rate, size, args.repeat))
        size = int(args.size_mb * 1e6)
        settings = FetchSettings(chunk_bytes=args.chunk_kib * 1024, max_attempts=20)
        cuts = [
            cut_run(work / f"cut-{n}", args.cut_rate, size, n, settings, args.repeat)
            for n in args.cuts
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "link",
                "cpus": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "rates": rates,
                "cuts": cuts,
                "targets": {"pull_over_curl_max": 1.15, "wire_per_model_byte_with_cuts_max": 1.1},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
