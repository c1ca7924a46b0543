"""Open Inference Protocol over HTTP vs the in-process call, for a 1x3x224x224 float32 tensor.

Both sides run the same ServedModel in this process; the API side goes through a real HTTP
round trip on 127.0.0.1 with the binary tensor extension (tritonclient, a client we did not
write, and a bare keep-alive http.client for the protocol's floor). Interleaved rounds.
Throughput: 4 concurrent clients for a fixed time. Target (issue 5): added p50 <= 1 ms.

Usage: python benchmarks/api.py [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks._models import image_classifier_224
from edge_agent.api import ApiServer
from edge_agent.config import RuntimeSettings
from edge_agent.serving import ModelRegistry, ServedModel
from edge_agent.serving.loading import load_version
from edge_agent.serving.metrics import ServingMetrics


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def binary_request(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    blob = x.tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + blob, {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="API vs in-process latency")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    import tritonclient.http as triton

    with tempfile.TemporaryDirectory() as tmp:
        path = image_classifier_224(Path(tmp) / "classifier224.onnx")
        served = ServedModel(
            "classifier", load_version("classifier", "1", path, RuntimeSettings(threads=1))
        )
        registry, metrics = ModelRegistry(), ServingMetrics()
        registry.add(served)
        metrics.attach(served)
        api = ApiServer(registry, metrics)
        address = api.start("127.0.0.1:0")
        host, port = address.rsplit(":", 1)
        x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
        body, headers = binary_request(x)
        connection = http.client.HTTPConnection(host, int(port))
        client = triton.InferenceServerClient(address)
        tensor = triton.InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=True)
        wanted = [triton.InferRequestedOutput("scores", binary_data=True)]

        def raw_http() -> None:
            connection.request("POST", "/v2/models/classifier/infer", body, headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200

        def via_triton() -> None:
            client.infer("classifier", [tensor], outputs=wanted)

        def in_process() -> None:
            served.run({"image": x})

        timings: dict[str, list[float]] = {
            "in_process": [],
            "http_binary": [],
            "tritonclient_binary": [],
        }
        calls = {
            "in_process": in_process,
            "http_binary": raw_http,
            "tritonclient_binary": via_triton,
        }
        for call in calls.values():  # warm-up
            for _ in range(10):
                call()
        for _ in range(args.requests):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                timings[name].append(time.perf_counter() - start)
        connection.close()
        client.close()

        done = 0
        lock = threading.Lock()
        stop = threading.Event()

        def worker() -> None:
            nonlocal done
            own = http.client.HTTPConnection(host, int(port))
            count = 0
            while not stop.is_set():
                own.request("POST", "/v2/models/classifier/infer", body, headers)
                own.getresponse().read()
                count += 1
            own.close()
            with lock:
                done += count

        workers = [threading.Thread(target=worker) for _ in range(4)]
        start = time.perf_counter()
        for thread in workers:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in workers:
            thread.join()
        elapsed = time.perf_counter() - start
        api.stop()
        served.active.drain_and_close()

    result = {name: percentiles(samples) for name, samples in timings.items()}
    added = result["http_binary"]["p50_ms"] - result["in_process"]["p50_ms"]
    print(
        json.dumps(
            {
                "benchmark": "api",
                "tensor": "1x3x224x224 float32 (602112 bytes), binary tensor extension",
                "requests_per_side": args.requests,
                "latency": result,
                "added_p50_ms_http": round(added, 3),
                "added_p50_ms_tritonclient": round(
                    result["tritonclient_binary"]["p50_ms"] - result["in_process"]["p50_ms"], 3
                ),
                "target_added_p50_ms": 1.0,
                "within_target": added <= 1.0,
                "throughput_4_clients_per_s": round(done / elapsed, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
