"""kill -9 during installs and activations: the store always reopens consistent and verified."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.delivery.store import ModelStore

MODELS = Path(__file__).resolve().parents[2] / "models"

WORKER = r"""
import hashlib, sys, itertools
from pathlib import Path
from edge_agent.delivery.store import ModelStore
root, sources = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in sources]
store = ModelStore(root)
print("ready", flush=True)
for step in itertools.count():
    version = step % 50 + 1
    i = version % len(sources)
    if store.get("digits", version) is None and version not in store.rejected("digits"):
        store.install("digits", version, sources[i], {"n": version}, digests[i])
    store.activate("digits", version)
    if step % 7 == 3 and store.previous("digits") is not None:
        store.rollback("digits")
    if step % 11 == 5:
        store.gc(keep=3)
"""


def test_store_is_consistent_after_kill_9_at_random_points(tmp_path: Path):
    sources = [
        MODELS / "digits" / n
        for n in ("digits_fp32.tflite", "digits_int8.onnx", "digits_int8.tflite")
    ]
    rng = random.Random(1234)
    root = tmp_path / "store"
    seen_active = 0
    for _round in range(20):
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(root), *map(str, sources)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == b"ready", worker.stderr.read()  # type: ignore[union-attr]
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(worker.pid, signal.SIGKILL)
        worker.communicate()
        with ModelStore(root) as store:  # reopens (lock released by the kernel), consistent
            models = store.list()
            slots = [m for m in models if m.state in ("active", "previous", "staged")]
            assert len({m.state for m in slots}) == len(slots)  # one model per slot
            for model in models:
                store.verify(model)  # every listed version's file is complete and unaltered
            assert not list(root.glob(".*.tmp"))
            seen_active += store.active("digits") is not None
    assert seen_active >= 15  # the workers really were killed in the middle of their work
