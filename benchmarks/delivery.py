"""Model delivery over MQTT vs raw paho publish/subscribe of the same bytes, in one run.

Prints JSON: for each size, the signed chunked delivery (registry -> DeviceUpdater -> verified,
fsynced file on disk) and the transport limit (paho publishing the same bytes in QoS 1
messages to a subscriber on the same loopback Mosquitto, both at the issue's 64 KiB and at the
delivery's chunk size; the faster is the baseline), plus RSS growth of this process while the
download runs (registry and device both live here, so it is an upper bound for the device).
Raw and delivery runs are interleaved ``--repeat`` times (other load on a shared machine hits
both alike); ``fraction_of_raw`` is the median over rounds of (fastest raw mode of the round /
delivery of the round). The registry runs with its default settings (rate limit included), so
a default that capped one device would show here.

    .venv/bin/python benchmarks/delivery.py [--sizes-mb 5 20] [--chunk-kib 256] [--window 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.config import FetchSettings  # noqa: E402
from edge_agent.fleet.registry import RegistryServer, RegistrySettings  # noqa: E402
from edge_agent.manifest import (  # noqa: E402
    MANIFEST_FILENAME,
    file_ref,
    load_manifest,
    save_manifest,
)
from edge_agent.transport.client import MqttClient  # noqa: E402
from edge_agent.trust.device.client import DeviceUpdater, provision  # noqa: E402
from edge_agent.trust.operator.publish import add_model  # noqa: E402
from edge_agent.trust.operator.repository import OperatorRepository  # noqa: E402
from tests.fixtures.mosquitto import start_broker  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.005)

    def __enter__(self) -> RssSampler:
        self.start = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def raw_paho(port: int, data: bytes, chunk: int, topic: str = "bench/raw", qos: int = 1) -> float:
    """Seconds to move ``data`` in ``chunk``-byte messages, publisher to subscriber."""
    count = -(-len(data) // chunk)
    done = threading.Event()
    got = {"n": 0, "bytes": 0}

    def on_message(_c, _u, message) -> None:
        got["n"] += 1
        got["bytes"] += len(message.payload)
        if got["n"] == count:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-sub")
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe(topic, qos=qos)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-pub")
    pub.max_inflight_messages_set(100)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    time.sleep(0.3)
    started = time.perf_counter()
    for offset in range(0, len(data), chunk):
        pub.publish(topic, data[offset : offset + chunk], qos=qos)
    done.wait(120)
    elapsed = time.perf_counter() - started
    assert got["bytes"] == len(data)
    for client in (pub, sub):
        client.disconnect()
        client.loop_stop()
    return elapsed


def make_package(work: Path, size: int) -> Path:
    """A package whose model file is ``size`` random bytes (delivery does not load it)."""
    package = work / f"pkg-{size}"
    package.mkdir()
    model = package / "big.onnx"
    model.write_bytes(os.urandom(size))
    template = ROOT / "models" / "digits"
    sample = work / "sample"
    if not sample.exists():
        from edge_agent.convert.package import PackageRequest, build_package

        build_package(
            PackageRequest(
                model=template / "digits_fp32.onnx", name="big", version="1.0.0", output=sample
            )
        )
    manifest = load_manifest(sample / MANIFEST_FILENAME)
    manifest = manifest.model_copy(
        update={"model": file_ref(model, package), "version": f"1.0.{size}"}
    )
    save_manifest(manifest, package / MANIFEST_FILENAME)
    return package


def deliver_once(
    work: Path, run: str, client: MqttClient, settings: FetchSettings, version: int
) -> tuple[float, int]:
    """Seconds to download the newest ``big`` to a fresh device, and its RSS growth."""
    device_dir = work / f"device-{run}"
    provision(device_dir / "metadata", work / "repo" / "metadata" / "1.root.json")
    try:
        with DeviceUpdater(
            device_dir / "metadata", client, "bench-device", device_dir / "downloads", settings
        ) as updater:
            updater.refresh()
            latest = updater.latest("big")
            assert latest.release == version
            with RssSampler() as rss:
                started = time.perf_counter()
                path, _ = updater.download(latest)
                elapsed = time.perf_counter() - started
            assert path.stat().st_size == latest.length
    finally:
        shutil.rmtree(device_dir, ignore_errors=True)
    return elapsed, rss.peak - rss.start


def main() -> None:
    defaults = FetchSettings()
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[5, 20])
    parser.add_argument("--chunk-kib", type=int, default=defaults.chunk_bytes // 1024)
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument("--chunks-per-request", type=int, default=defaults.chunks_per_request)
    parser.add_argument("--flush-every", type=int, default=defaults.flush_every)
    parser.add_argument("--repeat", type=int, default=7, help="rounds per size (median)")
    parser.add_argument(
        "--raw-chunk-kib", type=int, nargs="+", default=None, help="default: 64 and --chunk-kib"
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="registry chunks/s per device (default: its own)"
    )
    args = parser.parse_args()
    # The baseline (64 KiB, QoS 1), the delivery's chunk size at QoS 1, and at QoS 0
    # (what the registry sends frames with): the fastest of them is the transport limit.
    raw_modes = sorted(
        {(kib, 1) for kib in (args.raw_chunk_kib or [64, args.chunk_kib])} | {(args.chunk_kib, 0)}
    )
    registry_settings = RegistrySettings()
    if args.rate is not None:
        registry_settings = replace(registry_settings, rate_per_device=args.rate)
    settings = FetchSettings(
        chunk_bytes=args.chunk_kib * 1024,
        window=args.window,
        chunks_per_request=args.chunks_per_request,
        flush_every=args.flush_every,
    )
    work = Path(tempfile.mkdtemp(prefix="delivery-bench-"))
    broker = start_broker(work / "mosquitto")
    results = []
    try:
        repo = OperatorRepository.init(work / "repo", work / "keys")
        with (
            MqttClient(broker.url, "registry") as registry_client,
            MqttClient(broker.url, "bench-device") as device_client,
        ):
            registry_client.connect()
            device_client.connect()
            server = RegistryServer(work / "repo", registry_client, registry_settings)
            server.start()
            for size_mb in args.sizes_mb:
                size = int(size_mb * 1024 * 1024)
                release = add_model(repo, make_package(work, size))
                payload = os.urandom(size)
                raw: dict[tuple[int, int], list[float]] = {mode: [] for mode in raw_modes}
                runs: list[tuple[float, int]] = []
                fractions: list[float] = []
                for i in range(args.repeat):  # interleaved: load from others hits both alike
                    for kib, qos in raw_modes:
                        raw[(kib, qos)].append(
                            raw_paho(broker.port, payload, kib * 1024, f"raw/{kib}/{qos}/{i}", qos)
                        )
                    runs.append(
                        deliver_once(work, f"{size}-{i}", device_client, settings, release.release)
                    )
                    fractions.append(min(r[-1] for r in raw.values()) / runs[-1][0])
                delivery_s = statistics.median(t for t, _rss in runs)
                raw_s = {mode: statistics.median(times) for mode, times in raw.items()}
                results.append(
                    {
                        "size_mb": size_mb,
                        "delivery_s": round(delivery_s, 4),
                        "delivery_mb_s": round(size / delivery_s / 1e6, 1),
                        "delivery_runs_mb_s": [round(size / t / 1e6, 1) for t, _ in runs],
                        "raw_paho_mb_s": {
                            f"{kib}KiB_qos{qos}": round(size / s / 1e6, 1)
                            for (kib, qos), s in raw_s.items()
                        },
                        "fraction_of_raw": round(statistics.median(fractions), 3),
                        "fraction_of_raw_runs": [round(f, 2) for f in fractions],
                        "fraction_of_raw_64KiB_qos1": round(
                            raw_s.get((64, 1), min(raw_s.values())) / delivery_s, 3
                        ),
                        "rss_growth_mb_max": round(max(r for _, r in runs) / 1e6, 2),
                        "window_bytes_mb": round(settings.window * settings.chunk_bytes / 1e6, 2),
                    }
                )
            server.stop()
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "delivery",
                "chunk_kib": args.chunk_kib,
                "window": args.window,
                "chunks_per_request": settings.run,
                "registry_rate_chunks_per_s": registry_settings.rate_per_device,
                "repeat": args.repeat,
                "cpus": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
