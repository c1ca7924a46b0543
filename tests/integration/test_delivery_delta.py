"""Delta releases end to end: repository -> registry on real Mosquitto -> rebuilt, verified model.

A fine-tune of digits32 (its classifier head retrained) is published as release 2 with a signed
zstd delta from release 1. A device holding release 1 fetches the delta (a fraction of the
model), rebuilds the model and verifies it against the model's signed hash; a delta corrupted
in the registry's storage fails its own signed hash and the device downloads the whole model,
saying why; a device without release 1 downloads the whole model.
"""

from __future__ import annotations

import json
import queue
from pathlib import Path

import numpy as np
import pytest

from edge_agent.delivery.update import UpdateState
from edge_agent.runtime import load_model
from edge_agent.transport.client import Message
from edge_agent.trust.targets import ModelRelease
from tests.fakes.delivery_env import FAST, DeliveryEnv, delivery_env, watch_rollout
from tests.fakes.fine_tune import fine_tune
from tests.fixtures.mosquitto import Broker

pytestmark = pytest.mark.mqtt


BASE = Path(__file__).resolve().parents[2] / "models" / "digits32" / "digits32_fp32.onnx"


def publish_fine_tune(env: DeliveryEnv) -> tuple[Path, ModelRelease]:
    """Release 2: digits32 with its classifier head retrained (release 1 is digits32)."""
    tuned = fine_tune(BASE, env.tmp / "tuned" / "digits32_fp32.onnx")
    second = env.publish(tuned, version="1.1.0")
    assert [d.from_release for d in second.deltas] == [1]
    return tuned, second


def reasons(events: queue.Queue[Message]) -> list[tuple[str, str]]:
    """The update's transitions (state, reason), up to its final one (they arrive async)."""
    found: list[tuple[str, str]] = []
    while not found or found[-1][0] not in ("active", "failed"):
        transition = json.loads(events.get(timeout=5).payload)
        found.append((transition["state"], transition["reason"]))
    return found


def bytes_served(env: DeliveryEnv, device: str, release: int) -> int:
    """Bytes of release ``release``'s files (model, delta) the registry sent ``device``."""
    return env.server.served_bytes(device, f"targets/models/digits/{release}/")


def test_device_holding_the_previous_release_rebuilds_the_fine_tune_from_a_delta(
    tmp_path: Path, mosquitto: Broker
):
    with delivery_env(tmp_path, mosquitto.url) as env:
        device = env.device()
        env.publish(BASE, version="1.0.0")
        assert device.manager().update("digits").state is UpdateState.ACTIVE
        tuned, second = publish_fine_tune(env)
        events = watch_rollout(device.client, device.device_id)

        outcome = device.manager().update("digits")

        assert outcome.state is UpdateState.ACTIVE, outcome.reason
        active = device.store.active("digits")
        assert active is not None and active.version == 2
        assert active.sha256 == second.sha256
        assert active.path.read_bytes() == tuned.read_bytes()
        served = bytes_served(env, device.device_id, 2)
        assert served <= 0.05 * second.length, f"{served} B of a {second.length} B model"
        notes = reasons(events)
        assert any(
            state == "downloading" and "rebuilt from release 1" in reason for state, reason in notes
        ), notes
        backend = load_model(active.path)  # the rebuilt bytes are a working model
        try:
            spec = backend.inputs[0]
            image = np.zeros((1, 3, 32, 32), dtype=np.float32)
            scores = backend.run({spec.name: image})[backend.outputs[0].name]
            assert scores.shape == (1, 10)
        finally:
            backend.close()
        assert not list(device.download_dir.glob("*.zst")) and not list(
            device.download_dir.glob("*.rebuild.part")
        )


def test_delta_corrupted_in_registry_storage_falls_back_to_the_whole_model(
    tmp_path: Path, mosquitto: Broker
):
    with delivery_env(tmp_path, mosquitto.url) as env:
        device = env.device()
        env.publish(BASE, version="1.0.0")
        assert device.manager().update("digits").state is UpdateState.ACTIVE
        tuned, second = publish_fine_tune(env)
        (stored,) = env.repo.targets_dir.glob("models/digits/2/*.delta-from-1.zst")
        damaged = bytearray(stored.read_bytes())
        damaged[len(damaged) // 2] ^= 0xFF  # same length: only the hash can tell
        stored.chmod(0o644)
        stored.write_bytes(bytes(damaged))
        events = watch_rollout(device.client, device.device_id)

        outcome = device.manager().update("digits")

        assert outcome.state is UpdateState.ACTIVE, outcome.reason
        active = device.store.active("digits")
        assert active is not None and active.sha256 == second.sha256
        assert active.path.read_bytes() == tuned.read_bytes()
        notes = reasons(events)
        fallbacks = [r for s, r in notes if s == "downloading" and "delta from release 1" in r]
        assert len(fallbacks) == 1, notes
        assert "failed" in fallbacks[0] and "does not match" in fallbacks[0]
        assert "downloading the whole model" in fallbacks[0]
        assert bytes_served(env, device.device_id, 2) >= second.length


def test_device_without_the_previous_release_downloads_the_whole_model(
    tmp_path: Path, mosquitto: Broker
):
    with delivery_env(tmp_path, mosquitto.url) as env:
        env.publish(BASE, version="1.0.0")
        _tuned, second = publish_fine_tune(env)
        device = env.device()
        events = watch_rollout(device.client, device.device_id)

        outcome = device.manager().update("digits")

        assert outcome.state is UpdateState.ACTIVE, outcome.reason
        active = device.store.active("digits")
        assert active is not None and active.version == 2 and active.sha256 == second.sha256
        assert env.server.served_bytes(device.device_id, "targets/models/digits/1/") == 0
        served = bytes_served(env, device.device_id, 2)
        assert second.length <= served < second.length + FAST.chunk_bytes  # the model only
        assert [s for s, _ in reasons(events)] == ["downloading", "verified", "staged", "active"]
