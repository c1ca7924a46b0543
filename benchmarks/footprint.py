"""What the agent costs over the model it serves: memory and start-up against a bare floor.

`edge-agent run --model FILE` is started as a real process, and timed from exec to its
readiness line (printed once the model is loaded and the API serves); its RSS is read from
/proc once it is ready. The floor is a bare Python process that imports NumPy, the runtime
(LiteRT or ONNX Runtime) and paho-mqtt, loads the same model and runs it once: what any agent
serving this model must pay. Both run alternately in the same run, so the machine's mood hits
both alike. Also timed: `edge-agent --help` (what a user waits for at the prompt).

An installed package has its bytecode compiled; a process started with PYTHONDONTWRITEBYTECODE
(as some shells and CI set it) would compile every edge_agent module from source at each start
and charge the agent for it. So every process here runs with a private bytecode cache
(PYTHONPYCACHEPREFIX) that one untimed warm-up round fills first.

Targets (issue 10): RSS within 15 MiB of the floor, exec-to-ready within 0.2 s of the floor's,
`edge-agent --help` under 0.15 s.

Usage: python -m benchmarks.footprint [--model models/digits/digits_int8.tflite] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "digits" / "digits_int8.tflite"
READY_TIMEOUT_S = 60.0
SETTLE_S = 0.5
"""Wait after readiness before reading RSS, so late allocations (threads) are counted."""

FLOOR = """
import sys, numpy as np, paho.mqtt.client
path = sys.argv[1]
if path.endswith(".tflite"):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    it.invoke()
else:
    import onnxruntime as ort
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
            for i in s.get_inputs()}
    s.run(None, feed)
print("ready", file=sys.stderr, flush=True)
sys.stdin.read()
"""


def edge_agent_command() -> list[str]:
    """The console script beside this interpreter (what a user runs), else the module."""
    script = Path(sys.executable).parent / "edge-agent"
    if script.exists():
        return [str(script)]
    found = shutil.which("edge-agent")
    return [found] if found else [sys.executable, "-c", "from edge_agent.cli import main; main()"]


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """CPU time (user + system) ``pid`` has used so far, in seconds.

    Wall time to ready depends on how busy the machine is; CPU time much less so, which makes
    it the steadier comparison on a shared machine.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bytecode_env(cache: Path) -> dict[str, str]:
    """This environment with bytecode written to (and read from) ``cache``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def start_to_ready(command: list[str], marker: str, env: dict[str, str]) -> dict[str, float]:
    """Exec ``command``, wait for ``marker`` on its stderr; its start-up time and RSS."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stderr is not None
        lines = []
        while True:
            line = process.stderr.readline()
            if not line:
                raise RuntimeError(f"{command[0]} exited before ready: {''.join(lines)[-2000:]}")
            lines.append(line)
            if marker in line:
                break
            if time.perf_counter() - start > READY_TIMEOUT_S:
                raise RuntimeError(f"{command[0]} not ready in {READY_TIMEOUT_S} s")
        ready_s = time.perf_counter() - start
        cpu = cpu_s(process.pid)
        time.sleep(SETTLE_S)
        return {"ready_s": ready_s, "cpu_s": cpu, "rss_mib": rss_mib(process.pid)}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def time_command(command: list[str], env: dict[str, str]) -> float:
    """Wall time of one run of ``command`` (which must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
    return time.perf_counter() - start


def summary(values: list[float], digits: int) -> dict[str, object]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def measure(model: Path, rounds: int) -> dict[str, object]:
    agent = edge_agent_command()
    floor: list[dict[str, float]] = []
    served: list[dict[str, float]] = []
    help_s: list[float] = []
    python_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        env = bytecode_env(Path(tmp) / "pycache")
        store = Path(tmp) / "store"
        run = [
            *agent,
            "run",
            "--model",
            str(model),
            "--api",
            "127.0.0.1:0",
            "--device-id",
            "footprint",
            "--store-dir",
            str(store),
        ]
        bare = [sys.executable, "-c", FLOOR, str(model)]
        for _ in range(rounds + 1):  # the first round fills the bytecode cache: not counted
            floor.append(start_to_ready(bare, "ready", env))
            served.append(start_to_ready(run, "serving", env))
            help_s.append(time_command([*agent, "--help"], env))
            python_s.append(time_command([sys.executable, "-c", "pass"], env))
        del floor[0], served[0], help_s[0], python_s[0]
    floor_rss = statistics.median(f["rss_mib"] for f in floor)
    floor_ready = statistics.median(f["ready_s"] for f in floor)
    agent_rss = statistics.median(a["rss_mib"] for a in served)
    agent_ready = statistics.median(a["ready_s"] for a in served)
    floor_cpu = statistics.median(f["cpu_s"] for f in floor)
    agent_cpu = statistics.median(a["cpu_s"] for a in served)
    help_median = statistics.median(help_s)
    return {
        "model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
        "rounds": rounds,
        "floor": {
            "rss_mib": summary([f["rss_mib"] for f in floor], 1),
            "ready_s": summary([f["ready_s"] for f in floor], 3),
            "cpu_s": summary([f["cpu_s"] for f in floor], 3),
        },
        "agent": {
            "rss_mib": summary([a["rss_mib"] for a in served], 1),
            "ready_s": summary([a["ready_s"] for a in served], 3),
            "cpu_s": summary([a["cpu_s"] for a in served], 3),
        },
        "over_floor": {
            "rss_mib": round(agent_rss - floor_rss, 1),
            "ready_s": round(agent_ready - floor_ready, 3),
            "cpu_s": round(agent_cpu - floor_cpu, 3),
        },
        "help_s": summary(help_s, 3),
        "python_startup_s": summary(python_s, 3),
        "targets_met": {
            "rss_within_15_mib": agent_rss - floor_rss <= 15,
            "ready_within_0.2_s": agent_ready - floor_ready <= 0.2,
            "help_under_0.15_s": help_median < 0.15,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="agent RSS and start-up against a bare floor")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.model.resolve(), args.rounds), indent=2))


if __name__ == "__main__":
    main()
