"""What a running agent imports: nothing of the operator side, and only what its config uses.

import-linter checks the imports it can see in the source; these tests check the process: a
real `edge-agent run` subprocess (the console script's entry point, `edge_agent.cli:main`) that
writes ``sys.modules`` when it exits, so imports made through a registry string
(``importlib.import_module``, which the import-time log does not show) or inside a function
count too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.fakes.delivery_env import delivery_env
from tests.fixtures.mosquitto import free_port

ENTRY = """
import atexit, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sys.modules)))
sys.argv[0] = "edge-agent"
from edge_agent.cli import main
main()
"""
"""What the `edge-agent` console script runs, plus a dump of ``sys.modules`` at exit."""

OPERATOR = (
    "edge_agent.fleet",
    "edge_agent.convert",
    "edge_agent.trust.operator",
    "edge_agent.demo",
    "edge_agent.cli.convert_cmd",
    "edge_agent.cli.convert_auto_cmd",
    "edge_agent.cli.demo_cmd",
    "edge_agent.cli.fleet_cmd",
    "edge_agent.cli.monitor_cmd",
    "edge_agent.cli.registry_cmd",
    "edge_agent.cli.repo_cmd",
    "edge_agent.cli.simulate_cmd",
    "edge_agent.cli._rollout_view",
)
"""The operator side (see the import-linter contracts in pyproject.toml)."""

UNUSED_BY_QUICK_SERVE = (
    "edge_agent.delivery.update",
    "edge_agent.delivery.following",
    "edge_agent.trust.device",
    "edge_agent.telemetry.drift",
    "edge_agent.capture",
    "edge_agent.pipeline",
    "edge_agent.serving.isolation",
    "edge_agent.telemetry.profile",
    "tuf",
    "securesystemslib",
    "cryptography",
    "rich",
)
"""What serving one local model on CPU without a broker has no use for."""


def under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def run_agent(args: list[str], ready: Callable[[str], bool], cwd: Path) -> list[str]:
    """Start `edge-agent ARGS`; wait until ``ready(its stderr)``; stop it with SIGTERM.

    Returns every module the process imported, start-up to exit.
    """
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    log, dump = cwd / "agent.stderr", cwd / "modules.txt"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", ENTRY, str(dump), *args], stderr=stderr, env=env, cwd=cwd
        )
    try:
        deadline = time.monotonic() + 90
        while not ready(log.read_text(errors="replace")):
            assert process.poll() is None, f"the agent exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not ready: {log.read_text()[-3000:]}"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()[-3000:]
    return dump.read_text().splitlines()


def test_quick_serve_imports_no_operator_module_and_nothing_it_does_not_use(models_dir, tmp_path):
    """`edge-agent run --model` (the smallest agent) on a LiteRT model, no broker."""
    model = models_dir / "digits" / "digits_int8.tflite"
    args = ["run", "--model", str(model), "--api", "127.0.0.1:0", "--store-dir", str(tmp_path)]
    modules = run_agent(args, lambda log: ": serving digits_int8 on" in log, tmp_path)
    assert "edge_agent.agent.process" in modules and "ai_edge_litert" in modules
    assert [m for m in modules if under(m, OPERATOR)] == []
    assert [m for m in modules if under(m, UNUSED_BY_QUICK_SERVE)] == []


def test_full_agent_imports_no_operator_module(mosquitto, models_dir, tmp_path):
    """Every device path at once: broker, a signed delivery, capture, a pipeline, drift."""
    with delivery_env(tmp_path / "env", mosquitto.url) as env:
        env.publish(models_dir / "digits" / "digits_fp32.onnx", "digits", "1.0.0")
        local = models_dir / "digits" / "digits_int8.tflite"
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        api_port = free_port()
        config = {
            "device_id": "dev-imports",
            "device": "x86-generic",
            "store_dir": str(tmp_path / "state"),
            "api": {"listen": f"127.0.0.1:{api_port}"},
            "broker": {"url": mosquitto.url},
            "registry": {"root": str(env.root_json), "models": ["digits"], "chunk_bytes": 4096},
            "models": [{"name": "local", "path": str(local)}],
            "capture": {"enabled": True},
            "pipelines": [
                {
                    "name": "inbox",
                    "model": "digits",
                    "source": {"type": "folder", "path": str(inbox), "poll_interval_s": 0.1},
                    "postprocess": {"type": "classification", "top_k": 1},
                    "sinks": [{"type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
                }
            ],
        }
        path = tmp_path / "agent.yaml"
        path.write_text(yaml.safe_dump(config))

        def delivered(log: str) -> bool:
            if "dev-imports: serving" not in log:
                return False
            url = f"http://127.0.0.1:{api_port}/v2/models/digits/ready"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(json.load(response)["ready"])
            except OSError:
                return False

        modules = run_agent(["run", "--config", str(path)], delivered, tmp_path)
    # the device paths did run: delivery, the TUF client, capture, the pipeline
    for used in (
        "edge_agent.delivery.following",
        "edge_agent.trust.device.client",
        "edge_agent.capture.capturer",
        "edge_agent.pipeline.runner",
    ):
        assert used in modules
    assert [m for m in modules if under(m, OPERATOR)] == []
