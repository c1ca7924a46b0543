"""The sample store survives kill -9 at any moment: real SQLite, real files, a real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge_agent.capture.store import SampleStore

REPO = Path(__file__).resolve().parent.parent.parent

WRITER = """
import sys, numpy as np
from edge_agent.capture.store import Sample, SampleStore
store = SampleStore(sys.argv[1], max_bytes=int(sys.argv[2]))
rng = np.random.default_rng()
i = 0
while True:
    x = rng.random((1, 32, 32, 3)).astype(np.float32)
    store.add(Sample("m", "1", "cpu", 0.001, "random", {"input": x},
                     {"p": np.full((1, 10), float(i), np.float32)}))
    i += 1
    if i == 5:
        print("ready", flush=True)
"""


def test_kill_9_while_writing_leaves_a_consistent_store(tmp_path):
    max_bytes = 400_000  # ~10 samples: the cap drops while we kill, too
    for round_ in range(4):
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(max_bytes)],
            stdout=subprocess.PIPE,
            cwd=REPO,
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + 0.07 * round_)  # kill at different points of the write cycle
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
        with SampleStore(tmp_path, max_bytes=max_bytes) as store:
            samples = store.list()
            assert samples, "committed samples must survive"
            for info in samples:
                inputs, outputs = store.load(info.id)  # every indexed sample is whole
                assert inputs["input"].shape == (1, 32, 32, 3)
                assert outputs["p"].shape == (1, 10)
            files = sorted(p.name for p in store.payload_dir.iterdir())
            assert files == sorted(f"{s.id}.npz" for s in samples)  # no orphans, no temps
            assert store.stats()["bytes"] == sum(s.size for s in samples) <= max_bytes
            assert np.isfinite(store.stats()["dropped"])
