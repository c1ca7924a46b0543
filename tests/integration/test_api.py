"""The local inference API with clients we did not write: tritonclient and schemathesis."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.api import ApiServer
from edge_agent.config import RuntimeSettings
from edge_agent.serving import ModelRegistry, ServedModel
from edge_agent.serving.loading import load_version
from edge_agent.serving.metrics import ServingMetrics

tritonclient_http = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def digits(models_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(models_dir / "digits" / "test_set.npz")
    return data["x"], data["y"]


@pytest.fixture(scope="module")
def api(models_dir: Path) -> Iterator[ApiServer]:
    registry, metrics = ModelRegistry(), ServingMetrics()
    for name, file in (("digits", "digits_fp32.onnx"), ("digits-int8", "digits_int8.tflite")):
        served = ServedModel(
            name, load_version(name, "3", models_dir / "digits" / file, RuntimeSettings(threads=1))
        )
        registry.add(served)
        metrics.attach(served)
    server = ApiServer(registry, metrics, max_body_bytes=1 << 20)
    server.start("127.0.0.1:0")
    yield server
    server.stop()
    for served in registry:
        served.active.drain_and_close()


def request(
    api: ApiServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    host, port = api.address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_tritonclient_binary_and_json_inference(api, digits):
    client = tritonclient_http.InferenceServerClient(api.address)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("digits")
        metadata = client.get_model_metadata("digits")
        assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
        x = digits[0][:16].transpose(0, 3, 1, 2).copy()
        for binary in (True, False):
            tensor = tritonclient_http.InferInput("input", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            wanted = tritonclient_http.InferRequestedOutput("probabilities", binary_data=binary)
            result = client.infer("digits", [tensor], outputs=[wanted], request_id="r1")
            assert np.array_equal(result.as_numpy("probabilities").argmax(axis=1), digits[1][:16])
            assert result.get_response()["model_version"] == "3"
        index = client.get_model_repository_index()
        assert {m["name"] for m in index} == {"digits", "digits-int8"}
    finally:
        client.close()


def test_tritonclient_on_a_quantized_tflite_model_with_float_input(api, digits):
    client = tritonclient_http.InferenceServerClient(api.address)
    try:
        x = digits[0][:1]
        tensor = tritonclient_http.InferInput("serving_default_input:0", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("digits-int8", [tensor], model_version="3")
        (name,) = [o["name"] for o in result.get_response()["outputs"]]
        assert int(result.as_numpy(name).argmax()) == int(digits[1][0])
    finally:
        client.close()


def test_the_api_listens_on_a_unix_socket(models_dir, tmp_path, digits):
    registry, metrics = ModelRegistry(), ServingMetrics()
    registry.add(
        ServedModel(
            "digits",
            load_version(
                "digits", "1", models_dir / "digits" / "digits_fp32.onnx", RuntimeSettings()
            ),
        )
    )
    server = ApiServer(registry, metrics)
    socket_path = tmp_path / "api.sock"
    assert server.start(f"unix:{socket_path}") == f"unix:{socket_path}"
    try:
        x = digits[0][:1].transpose(0, 3, 1, 2)
        body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, 1, 8, 8],
                        "datatype": "FP32",
                        "data": x.ravel().tolist(),
                    }
                ]
            }
        )
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(socket_path))
            sock.sendall(
                f"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n{body}".encode()
            )
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        head, _, payload = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        (output,) = json.loads(payload)["outputs"]
        assert int(np.argmax(output["data"])) == int(digits[1][0])
    finally:
        server.stop()
        for served in registry:
            served.active.drain_and_close()
    assert not socket_path.exists()


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/nope/infer", b'{"inputs": []}', 404, "unknown model 'nope'"),
        ("/v2/models/digits/versions/9/infer", b"{}", 404, "version 9 is not served"),
        ("/v2/models/digits/infer", b"{not json", 400, "not valid JSON"),
        (
            "/v2/models/digits/infer",
            b'{"inputs": [{"name": "input", "shape": [1, 8, 8, 1], '
            b'"datatype": "FP32", "data": ' + json.dumps([0.0] * 64).encode() + b"}]}",
            400,
            "expects shape [?, 1, 8, 8], got [1, 8, 8, 1]",
        ),
        (
            "/v2/models/digits/infer",
            b'{"inputs": [{"name": "input", "shape": [1, 1, 8, 8], '
            b'"datatype": "STRING", "data": []}]}',
            400,
            "datatype 'STRING' is not supported",
        ),
        (
            "/v2/models/digits/infer",
            b'{"inputs": [{"name": "input", "shape": [1, 1, 8, 8], '
            b'"datatype": "FP32", "data": [1, 2]}]}',
            400,
            "needs 64 values, got 2",
        ),
        (
            "/v2/models/digits/infer",
            b'{"inputs": [{"name": "wrong", "shape": [1, 1, 8, 8], '
            b'"datatype": "FP32", "data": ' + json.dumps([0.0] * 64).encode() + b"}]}",
            400,
            "takes inputs [input], got [wrong]",
        ),
    ],
)
def test_bad_requests_get_4xx_with_a_message(api, path, body, status, message):
    code, payload = request(api, "POST", path, body, {"Content-Type": "application/json"})
    assert code == status
    assert message in json.loads(payload)["error"]


def test_an_oversized_body_is_refused_before_it_is_read(api):
    host, port = api.address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n"
        )
        response = b""
        while chunk := sock.recv(4096):  # the server closes the connection after the answer
            response += chunk
    assert response.startswith(b"HTTP/1.1 413")
    assert b"exceeds the limit" in response


def test_binary_data_size_that_lies_is_a_400(api):
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 1, 8, 8],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 256},
                }
            ]
        }
    ).encode()
    code, payload = request(
        api,
        "POST",
        "/v2/models/digits/infer",
        header + b"\x00" * 100,
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert code == 400 and b"binary_data_size" in payload


def test_metrics_count_inferences_per_model(api, digits):
    x = digits[0][:1].transpose(0, 3, 1, 2)
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, 1, 8, 8],
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ]
        }
    ).encode()
    assert request(api, "POST", "/v2/models/digits/infer", body)[0] == 200
    code, text = request(api, "GET", "/metrics")
    assert code == 200
    assert b'edge_agent_inferences_total{model="digits",outcome="ok",version="3"}' in text
    assert b'edge_agent_model_active{delegate="cpu",model="digits",version="3"} 1.0' in text


def test_openapi_spec_is_served(api):
    code, payload = request(api, "GET", "/v2/openapi.json")
    spec = json.loads(payload)
    assert code == 200 and "/v2/models/{name}/infer" in spec["paths"]


def test_fuzzing_the_openapi_spec_finds_no_server_error(api):
    """schemathesis generates requests from our spec: none may get a 5xx or break the spec."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(f"http://{api.address}/v2/openapi.json")
    failures: list[str] = []
    calls = []

    def fuzz_operation(op: Any) -> None:
        @settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=op.as_strategy())
        def fuzz(case: Any) -> None:
            response = case.call()
            calls.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{op.label}: {response.status_code} {response.text[:200]}")
            # a schema-valid request may still not fit the model (shape, values): a 400 is right
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

        fuzz()

    for operation in schema.get_all_operations():
        fuzz_operation(operation.ok())
    assert failures == []
    assert len(calls) >= 100 and {200, 400, 404} <= set(calls)
