"""The local inference API against the in-process call, against MLServer, and under concurrency.

Three parts, each with its baseline from the same run (interleaved rounds):

1. **binary**: a 1x3x224x224 float32 tensor with the binary tensor extension (tritonclient, a
   client we did not write, and a bare keep-alive http.client for the protocol's floor) vs
   ``ServedModel.run``. Target (issue 5): added p50 <= 1 ms.
2. **json_vs_mlserver**: the same third-party ONNX model (PaddleOCR's text-line orientation
   classifier from the zoo, input 1x3x48x192) behind our API and behind MLServer 1.7.1 (its own
   environment, benchmarks/_mlserver.py), the same JSON body posted to both, against the raw
   ONNX Runtime session (one thread everywhere). Target (issue 17): our added p50 at most half
   of MLServer's.
3. **concurrency**: 1 (sequential), 4 and 16 clients, each on its own keep-alive connection,
   for a fixed time: throughput and per-request p50/p99, unbatched and with dynamic batching
   (``serving.batching``): the zoo model inline (ONNX Runtime runs concurrent requests in
   parallel) and in a crash-contained worker (one request at a time), the tiny digits model in
   a worker.

The machine's load average is printed with the numbers: on a shared machine they move.

Usage: python benchmarks/api.py [--requests 300] [--seconds 4] [--skip-mlserver]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._models import image_classifier_224
from edge_agent.api import ApiServer
from edge_agent.config import ApiSettings, BatchingSettings, RuntimeSettings
from edge_agent.serving import ModelRegistry, ServedModel
from edge_agent.serving.loading import Isolation, load_version
from edge_agent.serving.metrics import ServingMetrics

MODELS = Path(__file__).resolve().parent.parent / "models"
ZOO_MODEL = "ppocr_cls"
OCR_SHAPE = (1, 3, 48, 192)
BATCHING = BatchingSettings(max_batch_size=16, max_queue_delay_ms=0)


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def binary_request(
    x: np.ndarray, name: str = "image", output: str = "scores"
) -> tuple[bytes, dict[str, str]]:
    blob = x.tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "outputs": [{"name": output, "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + blob, {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def json_request(x: np.ndarray, name: str) -> bytes:
    tensor = {"name": name, "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def interleaved(
    calls: dict[str, Callable[[], None]], rounds: int, warm_up: int = 10
) -> dict[str, list[float]]:
    """Each call ``rounds`` times, one of each per round, after ``warm_up`` calls each."""
    for call in calls.values():
        for _ in range(warm_up):
            call()
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - start)
    return timings


def poster(host: str, port: int, path: str, body: bytes, headers: dict[str, str]):
    connection = http.client.HTTPConnection(host, port)

    def post() -> None:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status

    return post, connection


def serve(models: dict[str, Any]) -> tuple[ApiServer, str, int, list[ServedModel]]:
    registry, metrics = ModelRegistry(), ServingMetrics()
    served = []
    for name, version in models.items():
        model = ServedModel(name, version)
        registry.add(model)
        metrics.attach(model)
        served.append(model)
    api = ApiServer(registry, metrics, settings=ApiSettings(max_connections=64))
    host, port = api.start("127.0.0.1:0").rsplit(":", 1)
    return api, host, int(port), served


def part_binary(tmp: Path, rounds: int) -> dict[str, Any]:
    import tritonclient.http as triton

    path = image_classifier_224(tmp / "classifier224.onnx")
    version = load_version("classifier", "1", path, RuntimeSettings(threads=1))
    api, host, port, (served,) = serve({"classifier": version})
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    body, headers = binary_request(x)
    raw_http, connection = poster(host, port, "/v2/models/classifier/infer", body, headers)
    client = triton.InferenceServerClient(f"{host}:{port}")
    tensor = triton.InferInput("image", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    wanted = [triton.InferRequestedOutput("scores", binary_data=True)]
    timings = interleaved(
        {
            "in_process": lambda: served.run({"image": x}) and None,
            "http_binary": raw_http,
            "tritonclient_binary": lambda: (
                client.infer("classifier", [tensor], outputs=wanted) and None
            ),
        },
        rounds,
    )
    connection.close()
    client.close()
    api.stop()
    served.active.drain_and_close()
    result = {name: percentiles(samples) for name, samples in timings.items()}
    base = result["in_process"]["p50_ms"]
    added = result["http_binary"]["p50_ms"] - base
    return {
        "tensor": "1x3x224x224 float32 (602112 bytes), binary tensor extension",
        "latency": result,
        "added_p50_ms_http": round(added, 3),
        "added_p50_ms_tritonclient": round(result["tritonclient_binary"]["p50_ms"] - base, 3),
        "target_added_p50_ms": 1.0,
        "within_target": added <= 1.0,
    }


def zoo_model() -> Path:
    from tests.fixtures.zoo import ZOO, fetch

    return fetch(next(m for m in ZOO if m.name == ZOO_MODEL))


def _serve_in_child(path: str, conn: Connection) -> None:
    """The agent's API in a process of its own, like MLServer's (no GIL shared with clients)."""
    version = load_version("ppocr", "1", Path(path), RuntimeSettings(threads=1))
    api, _, port, (served,) = serve({"ppocr": version})
    conn.send(port)
    conn.recv()
    api.stop()
    served.active.drain_and_close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def part_json(tmp: Path, rounds: int, mlserver: bool) -> dict[str, Any]:
    import onnxruntime as ort

    path = zoo_model()
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random(OCR_SHAPE, dtype=np.float32)
    body = json_request(x, name)
    headers = {"Content-Type": "application/json"}
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    ours_process = context.Process(target=_serve_in_child, args=(str(path), child))
    ours_process.start()
    port = parent.recv()
    ours, our_connection = poster("127.0.0.1", port, "/v2/models/ppocr/infer", body, headers)
    raw_cpu: list[float] = []

    def raw() -> None:
        start = time.thread_time()
        session.run(None, {name: x})
        raw_cpu.append(time.thread_time() - start)

    calls: dict[str, Callable[[], None]] = {"raw_runtime": raw, "edge_agent_json": ours}
    pids = {"edge_agent_json": ours_process.pid}
    with contextlib.ExitStack() as stack:
        if mlserver:
            from benchmarks import _mlserver

            ml_port, ml_pid = stack.enter_context(_mlserver.serve(path, "ppocr", tmp / "mlserver"))
            theirs, ml_connection = poster(
                "127.0.0.1", ml_port, "/v2/models/ppocr/infer", body, headers
            )
            stack.callback(ml_connection.close)
            calls["mlserver_json"] = theirs
            pids["mlserver_json"] = ml_pid
        for call in calls.values():  # warm-up outside the CPU accounting
            for _ in range(10):
                call()
        raw_cpu.clear()
        cpu_before = {side: cpu_seconds(pid) for side, pid in pids.items()}
        timings = interleaved(calls, rounds, warm_up=0)
        cpu = {side: cpu_seconds(pid) - cpu_before[side] for side, pid in pids.items()}
    our_connection.close()
    parent.send("stop")
    ours_process.join(10)
    latency = {side: percentiles(samples) for side, samples in timings.items()}
    raw_p = latency["raw_runtime"]
    raw_cpu_ms = 1000 * float(np.mean(raw_cpu))
    added = {
        side: {
            "added_p50_ms": round(value["p50_ms"] - raw_p["p50_ms"], 3),
            "added_p99_ms": round(value["p99_ms"] - raw_p["p99_ms"], 3),
            "server_cpu_ms_per_request": round(1000 * cpu[side] / rounds, 3),
            "added_cpu_ms_per_request": round(1000 * cpu[side] / rounds - raw_cpu_ms, 3),
        }
        for side, value in latency.items()
        if side != "raw_runtime"
    }
    result: dict[str, Any] = {
        "model": f"{ZOO_MODEL} ({path.name}), input {'x'.join(map(str, OCR_SHAPE))} FP32",
        "request_body_bytes": len(body),
        "servers": "each in its own process; the same JSON body; one runtime thread",
        "latency": latency,
        "raw_runtime_cpu_ms": round(raw_cpu_ms, 3),
        "added": added,
    }
    if "mlserver_json" in added:
        ours_p50 = added["edge_agent_json"]["added_p50_ms"]
        theirs_p50 = added["mlserver_json"]["added_p50_ms"]
        result["ratio_added_p50_ours_to_mlserver"] = round(ours_p50 / theirs_p50, 3)
        result["ratio_added_cpu_ours_to_mlserver"] = round(
            added["edge_agent_json"]["added_cpu_ms_per_request"]
            / added["mlserver_json"]["added_cpu_ms_per_request"],
            3,
        )
        result["target_ratio"] = 0.5
        result["within_target"] = ours_p50 <= 0.5 * theirs_p50
    return result


def load_clients(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str], clients: int, s: float
) -> dict[str, Any]:
    """``clients`` threads posting back to back for ``s`` seconds: throughput and latency."""
    samples: list[list[float]] = [[] for _ in range(clients)]
    stop = threading.Event()
    start_line = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(host, port)
        own = samples[index]
        start_line.wait()
        while not stop.is_set():
            began = time.perf_counter()
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            own.append(time.perf_counter() - began)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    time.sleep(s)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    every = [t for own in samples for t in own]
    return {"throughput_per_s": round(len(every) / elapsed, 1), **percentiles(every)}


def part_concurrency(seconds: float, repeats: int) -> dict[str, Any]:
    digits = MODELS / "digits" / "digits_fp32.onnx"
    cases: dict[str, tuple[Path, tuple[int, ...], Isolation]] = {
        # ONNX Runtime inline runs concurrent requests in parallel (one thread each)
        "ppocr_cls 1x3x48x192, inline": (zoo_model(), OCR_SHAPE, "inline"),
        # a crash-contained worker takes one request at a time, like a LiteRT interpreter
        "ppocr_cls 1x3x48x192, isolated worker": (zoo_model(), OCR_SHAPE, "process"),
        "digits 1x1x8x8, isolated worker": (digits, (1, 1, 8, 8), "process"),
    }
    report: dict[str, Any] = {}
    for label, (path, shape, isolation) in cases.items():
        settings = RuntimeSettings(threads=1)
        versions = {
            "unbatched": load_version("unbatched", "1", path, settings, isolation=isolation),
            "batched": load_version(
                "batched", "1", path, settings, isolation=isolation, batching=BATCHING
            ),
        }
        api, host, port, served = serve(versions)
        spec = versions["unbatched"].inputs[0]
        output = versions["unbatched"].outputs[0].name
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        body, headers = binary_request(x, spec.name, output)
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {m: {} for m in versions}
        for _ in range(repeats):  # interleaved: every mode and client count once per repeat
            for clients in (1, 4, 16):
                for mode in versions:
                    result = load_clients(
                        host, port, f"/v2/models/{mode}/infer", body, headers, clients, seconds
                    )
                    runs[mode].setdefault(clients, []).append(result)
        api.stop()
        batcher = versions["batched"].backend
        for model in served:
            model.active.drain_and_close()
        report[label] = {
            mode: {
                f"{clients}_clients": {
                    key: round(float(np.median([r[key] for r in results])), 3) for key in results[0]
                }
                for clients, results in by_clients.items()
            }
            for mode, by_clients in runs.items()
        }
        report[label]["batched_runtime_calls"] = getattr(batcher, "batches", None)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="API latency, MLServer, concurrency")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--parts", default="binary,json,concurrency")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    output: dict[str, Any] = {
        "benchmark": "api",
        "cpus": os.cpu_count(),
        "load_average_before": round(os.getloadavg()[0], 2),
        "requests_per_side": args.requests,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if "binary" in parts:
            output["binary"] = part_binary(Path(tmp), args.requests)
        if "json" in parts:
            output["json_vs_mlserver"] = part_json(Path(tmp), args.requests, not args.skip_mlserver)
        if "concurrency" in parts:
            output["concurrency"] = part_concurrency(args.seconds, args.repeats)
    output["load_average_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
