"""Soak: a real agent, registry and monitor under steady hostile and normal load; do they grow?

Starts a private Mosquitto, a signed repository with ``digits`` 1.0.0, and three real
processes: ``edge-agent registry serve``, ``edge-agent monitor serve`` (SQLite) and
``edge-agent run --config`` (following the registry, capture on). Then, for ``--minutes``, one
throttled thread of this process keeps up, side by side:

- normal load: JSON inference requests (4/s), the agent's own status, telemetry and samples;
  a new release every ``--release-every-s``, alternately a good one (hot swap through the
  gates) and a signed bad one (answers the wrong class: the gates reject it);
  a broker restart every ``--broker-restart-every-s`` (everyone reconnects);
- hostile load: bad API requests (invented model names, malformed, deeply nested and bad
  UTF-8 JSON, a body claiming 1 GiB, overflowing shapes, unknown datatypes, lying binary
  headers), idle and half-sent connections held open, malformed MQTT payloads on every device
  channel, the agent's command topic and the registry's request topic (wrong types, 1e999,
  deep nesting, NUL, lone surrogates, random bytes) from invented device ids, and well-formed
  statuses naming invented models.

Every ``--sample-s`` it reads, for each of the three processes, RSS, open file descriptors,
threads and CPU time from /proc, and the disk use of its state (agent: store_dir; registry:
the repository; monitor: the database folder). After ``--warmup-minutes`` (the baseline: the
first sample after warm-up, from the same run), each series gets a least-squares slope per
hour, judged against generous bounds. The registry's repository grows by one release per
cycle by design (the operator publishes them), so its disk bound allows that.

Prints JSON; exits 1 when a slope is over its bound or a request got a 5xx other than 503.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--sample-s 5]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from benchmarks.footprint import cpu_s, edge_agent_command  # noqa: E402
from edge_agent.demo.broker import free_port  # noqa: E402
from tests.fixtures.mosquitto import Broker, start_broker  # noqa: E402

DEVICE = "soak-agent"
MODEL = "digits"
MODELS_DIR = ROOT / "models" / "digits"

BOUNDS_PER_HOUR = {
    "rss_mib": 24.0,
    "fds": 12.0,
    "threads": 6.0,
    "disk_mib": 32.0,
}
"""Generous: a leak of one descriptor per five minutes, or 24 MiB of memory per hour, fails."""
MONITOR_DISK_PER_HOUR_MIB = 128.0
"""The monitor stores the fleet's time series by design and prunes them hourly
(``MonitorSettings.retention_interval_s``), so within a run its database grows; this bound
catches a runaway (raw payloads kept, a row per invented name), not the time series."""
REGISTRY_DISK_PER_RELEASE_MIB = 0.5
"""What one published release may add to the repository (model + signed metadata)."""


# -- the processes -------------------------------------------------------------------------


@dataclass
class Service:
    """One of the measured processes and the folder holding its state."""

    name: str
    process: subprocess.Popen[bytes]
    state_dir: Path
    log: Path


def start_service(name: str, command: list[str], state_dir: Path, work: Path) -> Service:
    log = work / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=ROOT
        )
    return Service(name, process, state_dir, log)


def stop_service(service: Service) -> int | None:
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait(timeout=10)
    return service.process.returncode


def proc_sample(pid: int) -> dict[str, float]:
    """RSS (MiB), open descriptors, threads and CPU seconds of ``pid``."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return {
        "rss_mib": int(fields["VmRSS"][0]) / 1024,
        "fds": float(len(os.listdir(f"/proc/{pid}/fd"))),
        "threads": float(fields["Threads"][0]),
        "cpu_s": cpu_s(pid),
    }


def disk_mib(path: Path) -> float:
    """Bytes allocated under ``path`` (what fills a disk), in MiB."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            # a file may be removed while walking (a temp file renamed away)
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total / (1 << 20)


def slope_per_hour(times: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` over ``times`` (seconds), per hour."""
    if len(times) < 3:
        return 0.0
    t = np.asarray(times) - times[0]
    slope = np.polyfit(t, np.asarray(values), 1)[0]
    return float(slope) * 3600.0


# -- the repository and releases ---------------------------------------------------------


def shuffled_classes_model(source: Path, target: Path) -> Path:
    """A validly signed but bad model: the digits CNN with its class scores rotated by one."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    (output,) = model.graph.output
    produced = output.name
    for node in model.graph.node:
        node.output[:] = [f"{o}_raw" if o == produced else o for o in node.output]
    order = numpy_helper.from_array(np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0], np.int64), "order")
    model.graph.initializer.append(order)
    model.graph.node.append(
        helper.make_node("Gather", [f"{produced}_raw", "order"], [produced], axis=1)
    )
    onnx.save(model, str(target))
    return target


class Releases:
    """Publishes the next release of ``digits``: good and bad in turn."""

    def __init__(self, work: Path) -> None:
        from edge_agent.trust.operator.repository import OperatorRepository

        self.work = work
        self.repo = OperatorRepository.init(work / "repo", work / "keys")
        self.bad = shuffled_classes_model(MODELS_DIR / "digits_fp32.onnx", work / "digits_bad.onnx")
        self.minor = 0
        self.published: Counter[str] = Counter()

    @property
    def root_json(self) -> Path:
        return self.work / "repo" / "metadata" / "1.root.json"

    def publish(self) -> str:
        from edge_agent.convert.package import PackageRequest, build_package
        from edge_agent.trust.operator.publish import add_model

        kind = "good" if self.minor % 2 == 0 else "bad"
        model = (
            self.bad
            if kind == "bad"
            else MODELS_DIR / ("digits_fp32.onnx" if self.minor % 4 == 0 else "digits_int8.onnx")
        )
        version = f"1.{self.minor}.0"
        package = self.work / "packages" / version
        build_package(
            PackageRequest(model=model, name=MODEL, version=version, output=package, force=True)
        )
        add_model(self.repo, package)
        shutil.rmtree(package)
        self.minor += 1
        self.published[kind] += 1
        return kind


# -- the load --------------------------------------------------------------------------------


def infer_body(metadata: dict[str, Any], rng: random.Random) -> bytes:
    (spec,) = metadata["inputs"]
    shape = [d if d > 0 else 1 for d in spec["shape"]]
    count = int(np.prod(shape))
    data = [rng.random() for _ in range(count)]
    return json.dumps(
        {
            "inputs": [
                {"name": spec["name"], "shape": shape, "datatype": spec["datatype"], "data": data}
            ]
        }
    ).encode()


def bad_api_requests(good: bytes) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(kind, path, body, headers): each must be refused with a 4xx (or 503), never a 500."""
    infer = f"/v2/models/{MODEL}/infer"
    json_headers = {"Content-Type": "application/json"}
    deep = b"[" * 200_000 + b"]" * 200_000
    return [
        ("invented_model", "/v2/models/{invented}/infer", good, json_headers),
        ("malformed_json", infer, b'{"inputs": [{"name": ', json_headers),
        ("deep_nesting", infer, deep, json_headers),
        ("bad_utf8", infer, b'{"inputs": "\xff\xfe\xfa"}', json_headers),
        (
            "overflowing_shape",
            infer,
            json.dumps(
                {"inputs": [{"name": "x", "shape": [65536] * 4, "datatype": "FP32", "data": []}]}
            ).encode(),
            json_headers,
        ),
        (
            "unknown_datatype",
            infer,
            json.dumps(
                {"inputs": [{"name": "x", "shape": [1], "datatype": "FP128", "data": [1]}]}
            ).encode(),
            json_headers,
        ),
        (
            "lying_binary_header",
            infer,
            b'{"inputs": []}',
            {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "999"},
        ),
        ("huge_number", infer, b'{"inputs": [{"shape": [1e999]}]}', json_headers),
        ("claims_1_gib", infer, b"", {**json_headers, "Content-Length": str(1 << 30)}),
    ]


@dataclass
class Load:
    """What was sent and how it was answered."""

    api_port: int
    broker: Broker
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    outcomes: Counter[str] = field(default_factory=Counter)
    mqtt_sent: Counter[str] = field(default_factory=Counter)
    idle: list[socket.socket] = field(default_factory=list)
    ghosts: int = 0
    _connection: http.client.HTTPConnection | None = None
    _good: bytes = b""
    _bad_index: int = 0
    _mqtt_index: int = 0
    _client: mqtt.Client | None = None

    def start(self, metadata: dict[str, Any]) -> None:
        self._good = infer_body(metadata, self.rng)
        self._bad = bad_api_requests(self._good)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="soak-hostile", protocol=mqtt.MQTTv5
        )
        client.max_queued_messages_set(100)
        client.reconnect_delay_set(1, 2)
        client.connect_async(self.broker.host, self.broker.port)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        for sock in self.idle:
            sock.close()
        if self._connection is not None:
            self._connection.close()

    def _request(self, path: str, body: bytes, headers: dict[str, str], fresh: bool = False) -> int:
        if fresh or self._connection is None:
            if self._connection is not None:
                self._connection.close()
            self._connection = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=15)
        connection = self._connection
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                self._connection = None
            return response.status
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            self._connection = None
            return -1 if not isinstance(exc, TimeoutError) else -2

    def infer(self) -> None:
        status = self._request(
            f"/v2/models/{MODEL}/infer", self._good, {"Content-Type": "application/json"}
        )
        self.outcomes[f"infer_{status}"] += 1

    def bad_api(self) -> None:
        kind, path, body, headers = self._bad[self._bad_index % len(self._bad)]
        self._bad_index += 1
        path = path.replace("{invented}", f"ghost-model-{self.rng.randrange(1 << 30)}")
        if kind == "claims_1_gib":
            status = self._claim_only(path, headers)
        else:
            status = self._request(path, body, headers, fresh=True)
        self.outcomes[f"{kind}_{status}"] += 1
        if status >= 500 and status != 503:
            self.outcomes["server_errors"] += 1

    def _claim_only(self, path: str, headers: dict[str, str]) -> int:
        """Headers that claim a 1 GiB body, then nothing: the answer must come at once."""
        with socket.create_connection(("127.0.0.1", self.api_port), timeout=15) as sock:
            head = f"POST {path} HTTP/1.1\r\nHost: x\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()
            )
            sock.sendall((head + "\r\n").encode())
            try:
                line = sock.recv(64).split(b" ")
                return int(line[1]) if len(line) > 1 else -1
            except (OSError, ValueError):
                return -1

    def idle_connections(self, keep: int = 4) -> None:
        """Hold ``keep`` connections that send nothing or half a request; count reaped ones."""
        alive = []
        for sock in self.idle:
            try:
                sock.setblocking(False)
                closed = sock.recv(4096) == b""
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            if closed:
                sock.close()
                self.outcomes["idle_closed_by_server"] += 1
            else:
                alive.append(sock)
        while len(alive) < keep:
            try:
                sock = socket.create_connection(("127.0.0.1", self.api_port), timeout=5)
            except OSError:
                self.outcomes["idle_connect_failed"] += 1
                break
            if len(alive) % 2:
                sock.sendall(b"POST /v2/models/digits/infer HTTP/1.1\r\nContent-Length: 100\r\n")
            alive.append(sock)
            self.outcomes["idle_opened"] += 1
        self.idle = alive

    def hostile_mqtt(self) -> None:
        """One malformed or hostile message, on a rotating channel."""
        assert self._client is not None
        self.ghosts += 1
        ghost = f"ghost-{self.ghosts}"
        pool = f"hostile-{self.ghosts % 8}"
        surrogate = '{"v": 1, "device_id": "\\ud800", "state": "online\\u0000", "time": 1}'
        cases: list[tuple[str, str, bytes]] = [
            ("status_random_bytes", f"ea/v1/{ghost}/status", self.rng.randbytes(64)),
            ("status_surrogate_nul", f"ea/v1/{ghost}/status", surrogate.encode()),
            (
                "telemetry_wrong_types",
                f"ea/v1/{ghost}/telemetry",
                b'{"v": 1, "device_id": 5, "time": "x", "load": {"models": 7}}',
            ),
            ("drift_huge_numbers", f"ea/v1/{ghost}/drift", b'{"v": 1e999, "psi": -1e999}'),
            ("rollout_deep", f"ea/v1/{ghost}/rollout", b"[" * 100_000),
            ("samples_garbage", f"ea/v1/{ghost}/samples", b"\x00\x00\xff\xff" + b"A" * 100),
            ("results_garbage", f"ea/v1/{ghost}/results/cam", b"\xc3\x28" * 20),
            ("command_garbage", f"ea/v1/{DEVICE}/cmd", b'{"v": 1, "command": "nope"}'),
            ("command_overflow", f"ea/v1/{DEVICE}/cmd", b'{"v": 1, "count": 1e999}'),
            ("registry_garbage", f"ea/v1/registry/req/{ghost}", self.rng.randbytes(40)),
            (
                "registry_invented_file",
                f"ea/v1/registry/req/{ghost}",
                json.dumps(
                    {"id": 1, "path": f"targets/{ghost}.onnx", "offset": 0, "length": 4096}
                ).encode(),
            ),
            ("status_invented_models", f"ea/v1/{pool}/status", self._invented_status(pool)),
        ]
        kind, topic, payload = cases[self._mqtt_index % len(cases)]
        self._mqtt_index += 1
        self._client.publish(topic, payload, qos=0)
        self.mqtt_sent[kind] += 1

    def _invented_status(self, device: str) -> bytes:
        from edge_agent.wire.states import DeviceState
        from edge_agent.wire.status import ModelStatus, Status

        models = [
            ModelStatus(name=f"m{self.rng.randrange(1 << 20)}", version="1", delegate="cpu")
            for _ in range(3)
        ]
        return Status(
            device_id=device, state=DeviceState.ONLINE, models=models, time=time.time()
        ).encode()


# -- the run ---------------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def model_metadata(port: int) -> dict[str, Any] | None:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", f"/v2/models/{MODEL}")
        response = connection.getresponse()
        body = response.read()
        connection.close()
    except OSError:
        return None
    return json.loads(body) if response.status == 200 else None


def agent_config(work: Path, broker_url: str, api_port: int, root: Path) -> dict[str, Any]:
    return {
        "device_id": DEVICE,
        "device": "x86-generic",
        "store_dir": str(work / "agent"),
        "api": {"listen": f"127.0.0.1:{api_port}", "idle_timeout_s": 5, "max_connections": 16},
        "broker": {"url": broker_url, "keepalive_s": 10},
        "registry": {"root": str(root), "models": [MODEL], "check_interval_s": 10},
        "telemetry": {"latency": {"report_interval_s": 5}},
        "serving": {
            "status_interval_seconds": 5,
            "gates": {
                "shadow_seconds": 2,
                "min_samples": 5,
                "watch_seconds": 5,
                "max_latency_ratio": 100,
            },
        },
        "capture": {"enabled": True, "random_rate": 0.05},
    }


def summarise(
    samples: dict[str, list[dict[str, float]]], warmup_s: float, releases: int
) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for name, series in samples.items():
        steady = [s for s in series if s["t"] >= warmup_s]
        times = [s["t"] for s in steady]
        entry: dict[str, Any] = {}
        for metric, bound in BOUNDS_PER_HOUR.items():
            if metric == "disk_mib" and name == "monitor":
                bound = MONITOR_DISK_PER_HOUR_MIB
            if metric == "disk_mib" and name == "registry":
                hours = (times[-1] - times[0]) / 3600 if len(times) > 1 else 1.0
                bound = bound + REGISTRY_DISK_PER_RELEASE_MIB * releases / max(hours, 1e-9)
            values = [s[metric] for s in steady]
            slope = slope_per_hour(times, values)
            entry[metric] = {
                "baseline": round(values[0], 2) if values else None,
                "last": round(values[-1], 2) if values else None,
                "max": round(max(values), 2) if values else None,
                "slope_per_hour": round(slope, 3),
                "bound_per_hour": round(bound, 2),
                "ok": slope <= bound,
            }
        if len(series) > 1:
            span = series[-1]["t"] - series[0]["t"]
            entry["cpu_cores"] = round((series[-1]["cpu_s"] - series[0]["cpu_s"]) / span, 3)
        report[name] = entry
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="soak a real agent, registry and monitor")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--warmup-minutes", type=float, default=None, help="default: min(5, minutes / 3)"
    )
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--release-every-s", type=float, default=120.0)
    parser.add_argument("--broker-restart-every-s", type=float, default=30.0)
    parser.add_argument("--infer-per-s", type=float, default=4.0)
    parser.add_argument("--bad-api-per-s", type=float, default=1.0)
    parser.add_argument("--bad-mqtt-per-s", type=float, default=2.0)
    parser.add_argument("--keep-dir", type=Path, default=None, help="keep logs and state here")
    args = parser.parse_args()
    warmup_s = 60 * (
        args.warmup_minutes if args.warmup_minutes is not None else min(5, args.minutes / 3)
    )
    work = args.keep_dir or Path(tempfile.mkdtemp(prefix="soak-"))
    work.mkdir(parents=True, exist_ok=True)
    broker = start_broker(work / "mosquitto")
    services: list[Service] = []
    load: Load | None = None
    started = time.monotonic()
    exit_codes: dict[str, int | None] = {}
    try:
        releases = Releases(work)
        releases.publish()  # 1.0.0, good: what the agent starts on
        agent_cmd = edge_agent_command()
        api_port, http_port = free_port(), free_port()
        config = work / "agent.yaml"
        config.write_text(json.dumps(agent_config(work, broker.url, api_port, releases.root_json)))
        (work / "monitor").mkdir()
        services = [
            start_service(
                "registry",
                [*agent_cmd, "registry", "serve", "--repo", str(work / "repo"),
                 "--broker", broker.url],
                work / "repo",
                work,
            ),
            start_service(
                "monitor",
                [*agent_cmd, "monitor", "serve", "--broker", broker.url,
                 "--db", f"sqlite:///{work / 'monitor' / 'monitor.db'}",
                 "--http", f"127.0.0.1:{http_port}", "--retention-days", "0.01"],
                work / "monitor",
                work,
            ),
            start_service(
                "agent", [*agent_cmd, "run", "--config", str(config)], work / "agent", work
            ),
        ]  # fmt: skip
        wait_until(lambda: model_metadata(api_port) is not None, 120, "the first delivery")
        metadata = model_metadata(api_port)
        assert metadata is not None
        load = Load(api_port, broker)
        load.start(metadata)

        samples: dict[str, list[dict[str, float]]] = {s.name: [] for s in services}
        begin = time.monotonic()
        end = begin + args.minutes * 60

        def sample() -> None:
            now = time.monotonic() - begin
            for service in services:
                if service.process.poll() is not None:
                    raise RuntimeError(
                        f"{service.name} exited ({service.process.returncode}): "
                        f"{service.log.read_text(errors='replace')[-2000:]}"
                    )
                row = proc_sample(service.process.pid)
                row["disk_mib"] = disk_mib(service.state_dir)
                row["t"] = now
                samples[service.name].append(row)

        def release() -> None:
            load.outcomes[f"release_{releases.publish()}"] += 1  # type: ignore[union-attr]

        def restart_broker() -> None:
            broker.restart()
            load.outcomes["broker_restarts"] += 1  # type: ignore[union-attr]

        tasks: list[tuple[float, Callable[[], None]]] = [
            (args.sample_s, sample),
            (1 / args.infer_per_s, load.infer),
            (1 / args.bad_api_per_s, load.bad_api),
            (1 / args.bad_mqtt_per_s, load.hostile_mqtt),
            (5.0, load.idle_connections),
            (args.release_every_s, release),
            (args.broker_restart_every_s, restart_broker),
        ]
        due = [begin + (0 if fn is sample else period) for period, fn in tasks]
        while True:
            now = time.monotonic()
            if now >= end:
                break
            i = min(range(len(tasks)), key=due.__getitem__)
            if due[i] > now:
                time.sleep(min(due[i], end) - now)
                continue
            period, fn = tasks[i]
            fn()
            due[i] = max(due[i] + period, time.monotonic() - period)  # no catch-up bursts
        sample()
        result = summarise(samples, warmup_s, releases.minor - 1)
        own_cpu = time.process_time()
        outcomes = dict(sorted(load.outcomes.items()))
        mqtt_sent = dict(sorted(load.mqtt_sent.items()))
        load.stop()
        load = None
        for service in services:
            exit_codes[service.name] = stop_service(service)
        published = dict(sorted(releases.published.items()))
        slopes_ok = all(
            m["ok"] for entry in result.values() for m in entry.values() if isinstance(m, dict)
        )
    finally:
        if load is not None:
            load.stop()
        for service in services:
            stop_service(service)
        broker.stop()
    server_errors = outcomes.get("server_errors", 0)
    report = {
        "benchmark": "soak",
        "minutes": args.minutes,
        "warmup_minutes": round(warmup_s / 60, 2),
        "sample_s": args.sample_s,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "processes": result,
        "load_generator_cpu_cores": round(own_cpu / (time.monotonic() - started), 3),
        "releases_published": published,
        "api_outcomes": outcomes,
        "mqtt_hostile_sent": mqtt_sent,
        "exit_codes": exit_codes,
        "server_errors": server_errors,
        "work_dir": str(work) if args.keep_dir else None,
        "pass": slopes_ok and server_errors == 0,
    }
    print(json.dumps(report, indent=2))
    if args.keep_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if report["pass"] else 1)


if __name__ == "__main__":
    main()
