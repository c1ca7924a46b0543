"""The local API under hostile clients: idle and slow connections, connection floods, oversized
and impossible requests. A real server on a real model; raw sockets where a polite client
could not misbehave."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_agent.api import ApiServer
from edge_agent.config import ApiSettings, RuntimeSettings
from edge_agent.serving import ModelRegistry, ServedModel
from edge_agent.serving.loading import load_version
from edge_agent.serving.metrics import ServingMetrics

INPUT = "serving_default_input:0"
LIMITS = ApiSettings(
    max_connections=3, idle_timeout_s=0.5, max_body_bytes=1 << 20, max_json_body_bytes=64 << 10
)


@pytest.fixture
def api(models_dir: Path) -> Iterator[ApiServer]:
    registry, metrics = ModelRegistry(), ServingMetrics()
    model = models_dir / "digits" / "digits_int8.tflite"
    served = ServedModel("digits", load_version("digits", "1", model, RuntimeSettings(threads=1)))
    registry.add(served)
    metrics.attach(served)
    server = ApiServer(registry, metrics, settings=LIMITS)
    server.start("127.0.0.1:0")
    yield server
    server.stop()
    served.active.drain_and_close()


def connect(api: ApiServer) -> socket.socket:
    host, port = api.address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def post(api: ApiServer, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    host, port = api.address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/v2/models/digits/infer", body, headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def infer_ok(api: ApiServer) -> bool:
    x = np.zeros((1, 8, 8, 1), np.float32)
    body = {"inputs": [{"name": INPUT, "shape": list(x.shape), "datatype": "FP32"}]}
    body["inputs"][0]["data"] = x.ravel().tolist()
    status, _ = post(api, json.dumps(body).encode())
    return status == 200


def served_after_refusals(api: ApiServer) -> bool:
    """One inference while slots may still be taken: the server answers 503 and closes without
    reading the body, so the client's write can break; that is a refusal, not a failure."""
    try:
        return infer_ok(api)
    except ConnectionError:
        return False


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


def test_rejects_idle_connections_holding_a_thread_forever(api):
    idle = connect(api)
    assert closed_by_server(idle, within_s=5)  # nothing sent: closed after idle_timeout_s
    idle.close()


def test_rejects_slowloris_headers_and_bodies(api):
    headers_only = connect(api)
    headers_only.sendall(b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n")  # never ends
    slow_body = connect(api)
    slow_body.sendall(
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"
    )
    assert closed_by_server(headers_only, within_s=5)
    assert closed_by_server(slow_body, within_s=5)
    headers_only.close()
    slow_body.close()
    assert infer_ok(api)


def test_a_connection_flood_gets_503_with_retry_after_and_serving_goes_on(api):
    held = [connect(api) for _ in range(LIMITS.max_connections)]
    time.sleep(0.1)
    extra = connect(api)
    extra.settimeout(5)
    answer = extra.recv(4096)
    assert answer.startswith(b"HTTP/1.1 503")
    assert b"Retry-After: 1" in answer
    extra.close()
    assert api.refused_connections >= 1
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 5
    while not served_after_refusals(api):  # the held connections' threads end, slots come back
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_rejects_a_shape_whose_element_count_overflows(api):
    """Regression: a shape of [65536]*4 overflowed int64 to 0 elements and answered 500."""
    body = {
        "inputs": [
            {
                "name": INPUT,
                "shape": [65536] * 4,
                "datatype": "FP32",
                "parameters": {"binary_data_size": 0},
            }
        ]
    }
    header = json.dumps(body).encode()
    status, answer = post(api, header, {"Inference-Header-Content-Length": str(len(header))})
    assert status == 400 and "needs" in answer["error"]
    body["inputs"][0].pop("parameters")
    body["inputs"][0]["data"] = []
    status, answer = post(api, json.dumps(body).encode())
    assert status == 400 and "needs" in answer["error"]


def test_rejects_deeply_nested_json_with_400_not_500(api):
    """Regression: deeply nested JSON raised RecursionError (a 500)."""
    status, answer = post(api, b"[" * 100_000 + b"]" * 100_000)
    assert status in (400, 413), answer  # whichever limit it meets first, never a 500
    status, answer = post(api, b"[" * 20_000 + b"]" * 20_000)
    assert status == 400 and "too deeply" in answer["error"]


def test_a_big_json_body_is_refused_before_it_is_decoded(api):
    """Regression: a 7.6 MiB JSON body made the agent peak at +91 MiB while decoding it."""
    big = json.dumps({"inputs": [{"name": INPUT, "data": [0.5] * 40_000}]}).encode()
    assert len(big) > LIMITS.max_json_body_bytes
    status, answer = post(api, big)
    assert status == 413 and "binary tensor data extension" in answer["error"]
    assert infer_ok(api)
