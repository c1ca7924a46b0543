"""Model delivery over MQTT vs raw paho publish/subscribe of the same bytes, in one run.

Prints JSON: for each size, the signed chunked delivery (registry -> DeviceUpdater -> verified
file on disk) and the transport limit (paho publishing the same bytes in 64 KiB QoS 1 messages
to a subscriber on the same loopback Mosquitto), plus RSS growth of this process while the
download runs (registry and device both live here, so it is an upper bound for the device).

    .venv/bin/python benchmarks/delivery.py [--sizes-mb 5 20] [--chunk-kib 64] [--window 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.fleet.registry import RegistryServer, RegistrySettings  # noqa: E402
from edge_agent.manifest import (  # noqa: E402
    MANIFEST_FILENAME,
    file_ref,
    load_manifest,
    save_manifest,
)
from edge_agent.transport.client import MqttClient  # noqa: E402
from edge_agent.trust.device import DeviceUpdater, provision  # noqa: E402
from edge_agent.trust.publish import add_model  # noqa: E402
from edge_agent.trust.repository import OperatorRepository  # noqa: E402
from edge_agent.trust.transfer import FetchSettings  # noqa: E402
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


def raw_paho(port: int, data: bytes, chunk: int) -> float:
    """Seconds to move ``data`` in ``chunk``-byte QoS 1 messages, publisher to subscriber."""
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
    sub.subscribe("bench/raw", qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-pub")
    pub.max_inflight_messages_set(100)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    time.sleep(0.3)
    started = time.perf_counter()
    for offset in range(0, len(data), chunk):
        pub.publish("bench/raw", data[offset : offset + chunk], qos=1)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[5, 20])
    parser.add_argument("--chunk-kib", type=int, default=64)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--flush-every", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1e6, help="registry per-device req/s")
    args = parser.parse_args()
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
            server = RegistryServer(
                work / "repo",
                registry_client,
                RegistrySettings(rate_per_device=args.rate, burst_per_device=max(64, args.window)),
            )
            server.start()
            settings = FetchSettings(
                chunk_bytes=args.chunk_kib * 1024, window=args.window, flush_every=args.flush_every
            )
            for size_mb in args.sizes_mb:
                size = int(size_mb * 1024 * 1024)
                release = add_model(repo, make_package(work, size))
                raw_s = raw_paho(broker.port, os.urandom(size), args.chunk_kib * 1024)
                device_dir = work / f"device-{size}"
                provision(device_dir / "metadata", work / "repo" / "metadata" / "1.root.json")
                with DeviceUpdater(
                    device_dir / "metadata",
                    device_client,
                    "bench-device",
                    device_dir / "downloads",
                    settings,
                ) as updater:
                    updater.refresh()
                    latest = updater.latest("big")
                    assert latest.release == release.release
                    with RssSampler() as rss:
                        started = time.perf_counter()
                        path, _ = updater.download(latest)
                        elapsed = time.perf_counter() - started
                    assert path.stat().st_size == size
                results.append(
                    {
                        "size_mb": size_mb,
                        "delivery_s": round(elapsed, 3),
                        "delivery_mb_s": round(size / elapsed / 1e6, 1),
                        "raw_paho_s": round(raw_s, 3),
                        "raw_paho_mb_s": round(size / raw_s / 1e6, 1),
                        "fraction_of_raw": round(raw_s / elapsed, 3),
                        "rss_growth_mb": round((rss.peak - rss.start) / 1e6, 2),
                        "window_bytes_mb": round(args.window * args.chunk_kib * 1024 / 1e6, 2),
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
                "cpus": os.cpu_count(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
