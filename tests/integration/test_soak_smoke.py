"""A short run of ``benchmarks/soak.py``: the soak's machinery works, and under its hostile
load no process crashes, every bad request gets its 4xx and idle connections are closed.

Too short for the slopes to mean anything (the 30-minute run in docs/security.md judges
those); what this guards is that the benchmark keeps running as the code under it changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.mqtt

ROOT = Path(__file__).resolve().parents[2]


def test_soak_smoke_run_answers_every_hostile_request_and_stops_cleanly() -> None:
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "soak.py"),
        "--minutes", "0.1",
        "--warmup-minutes", "0",
        "--sample-s", "1",
        "--release-every-s", "1000",
        "--broker-restart-every-s", "3",
        "--bad-api-per-s", "3",
        "--bad-mqtt-per-s", "6",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=150, cwd=ROOT)
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["server_errors"] == 0
    assert report["exit_codes"] == {"registry": 0, "monitor": 0, "agent": 0}
    outcomes = report["api_outcomes"]
    assert outcomes.get("infer_200", 0) > 0 and outcomes.get("broker_restarts", 0) >= 1
    refused = {k: v for k, v in outcomes.items() if k.rsplit("_", 1)[-1] in ("400", "404", "413")}
    assert sum(refused.values()) >= 9, outcomes
    assert not [k for k in outcomes if k.rsplit("_", 1)[-1] in ("-1", "-2", "500")], outcomes
    for name in ("agent", "registry", "monitor"):
        entry = report["processes"][name]
        assert {"rss_mib", "fds", "threads", "disk_mib"} <= set(entry)
        assert entry["rss_mib"]["last"] > 10
