"""MLServer (Seldon, 1.7.1) on an ONNX model, for side-by-side benchmarks of the JSON path.

MLServer ships no ONNX Runtime runtime, so it serves the model through a ten-line custom
``MLModel`` (one intra-op thread, like the agent in the benchmark), written next to the model
settings at run time. MLServer and its dependencies live in their own virtual environment under
the benchmark cache (``EDGE_AGENT_BENCH_CACHE``, default ``~/.cache/edge-agent-bench``), made
on first use with ``pip install mlserver==1.7.1 onnxruntime``: nothing of it enters the
project's environments. ``parallel_workers: 0`` keeps inference in the server process, MLServer's
fastest setting for one model.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

MLSERVER = "mlserver==1.7.1"
RUNTIME = """
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            self.settings.parameters.uri, options, providers=["CPUExecutionProvider"]
        )
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        results = self._session.run(None, feed)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output(n, a) for n, a in zip(self._outputs, results)],
        )
"""


def cache_dir() -> Path:
    """Where the MLServer environment is kept between runs."""
    default = Path.home() / ".cache" / "edge-agent-bench"
    return Path(os.environ.get("EDGE_AGENT_BENCH_CACHE") or default)


def environment() -> Path:
    """The ``mlserver`` executable of the benchmark's own environment (made when missing)."""
    venv = cache_dir() / "mlserver-venv"
    executable = venv / "bin" / "mlserver"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", MLSERVER, "onnxruntime"],
            check=True,
            timeout=1800,
        )
    return executable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(model: Path, name: str, folder: Path) -> Iterator[tuple[int, int]]:
    """Run MLServer on ``model`` as ``name``; yields (HTTP port, pid) once the model is ready."""
    executable = environment()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "onnx_runtime.py").write_text(RUNTIME)
    port = _free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
        "parallel_workers": 0,
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": name,
                "implementation": "onnx_runtime.OnnxModel",
                "parameters": {"uri": str(model)},
            }
        )
    )
    log = (folder / "mlserver.log").open("wb")
    process = subprocess.Popen(
        [str(executable), "start", str(folder)], cwd=folder, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 120
        while not _ready(port, name):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"MLServer did not start; see {folder / 'mlserver.log'}")
            time.sleep(0.5)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _ready(port: int, name: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", f"/v2/models/{name}/ready")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
