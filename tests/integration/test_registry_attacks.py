"""Attacks on model delivery, each stopped by TUF or the chunk protocol (real broker, real keys).

Every test checks three things: the attack is refused with a reason that names it, the model
that was active keeps serving, and (where an update ran) a failure was published on the rollout
topic.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, TargetFile, Targets, Timestamp

from edge_agent.delivery.update import UpdateState
from edge_agent.errors import UpdateError
from edge_agent.transport import topics
from edge_agent.transport.client import MqttClient
from edge_agent.trust.operator.keys import generate_key, load_key
from edge_agent.trust.operator.repository import RoleKeys
from edge_agent.trust.protocol import BAD_REQUEST, OK, ChunkRequest, ChunkResponse, decode_response
from tests.fakes.delivery_env import (
    FAST,
    DeliveryEnv,
    Device,
    MisbehavingRegistry,
    delivery_env,
    watch_rollout,
)
from tests.fixtures.mosquitto import Broker
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.mqtt

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


def _installed_v1(env: DeliveryEnv) -> Device:
    env.publish(DIGITS / "digits_fp32.tflite", version="1.0.0")
    device = env.device()
    assert device.manager().update("digits").state is UpdateState.ACTIVE
    return device


def _update_fails(device: Device, *reason_parts: str) -> str:
    """Run an update that must fail; the old model keeps serving; the failure is published."""
    events = watch_rollout(device.client, device.device_id)
    before = device.store.active("digits")
    outcome = device.manager().update("digits")
    assert outcome.state is UpdateState.FAILED, outcome
    for part in reason_parts:
        assert part in outcome.reason, outcome.reason
    assert device.store.active("digits") == before
    if before is not None:
        device.store.verify(before)
    published = []
    while True:
        try:
            published.append(json.loads(events.get(timeout=2).payload))
        except queue.Empty:
            break
        if published[-1]["state"] == "failed":
            break
    assert published and published[-1]["state"] == "failed", published
    return outcome.reason


def _metadata_path(env: DeliveryEnv, role: str, version: int | None = None) -> Path:
    name = f"{role}.json" if version is None else f"{version}.{role}.json"
    return env.repo.metadata_dir / name


def _republish_online(env: DeliveryEnv) -> None:
    """What an attacker holding only the online keys can do: new snapshot + timestamp."""
    env.repo.refresh(("snapshot",))


@pytest.fixture
def env(tmp_path: Path, mosquitto: Broker):
    with delivery_env(tmp_path, mosquitto.url) as environment:
        yield environment


def test_rejects_tampered_model(env: DeliveryEnv):
    device = _installed_v1(env)
    release = env.publish(DIGITS / "digits_int8.onnx", version="1.1.0")
    stored = env.repo.targets_dir / f"models/digits/2/{release.sha256}.digits_int8.onnx"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same length, one flipped byte
    stored.write_bytes(bytes(data))
    _update_fails(device, "does not match", "sha256")
    assert not list(device.download_dir.glob("*.part*"))  # nothing partial is kept or trusted


def test_rejects_truncated_model(env: DeliveryEnv):
    device = _installed_v1(env)
    release = env.publish(DIGITS / "digits_int8.onnx", version="1.1.0")
    stored = env.repo.targets_dir / f"models/digits/2/{release.sha256}.digits_int8.onnx"
    os.truncate(stored, release.length // 2)
    _update_fails(device, "wrong length")


def test_rejects_model_of_wrong_length(env: DeliveryEnv):
    device = _installed_v1(env)
    release = env.publish(DIGITS / "digits_int8.onnx", version="1.1.0")
    stored = env.repo.targets_dir / f"models/digits/2/{release.sha256}.digits_int8.onnx"
    with stored.open("ab") as handle:
        handle.write(b"\0" * 100)
    _update_fails(device, "wrong length")


def test_rejects_metadata_signed_by_unknown_key(env: DeliveryEnv):
    device = _installed_v1(env)
    path = _metadata_path(env, "timestamp")
    md = Metadata[Timestamp].from_file(str(path))
    md.signed.version += 1
    md.sign(generate_key(env.tmp / "attacker", "timestamp").signer)
    path.write_bytes(md.to_bytes())
    _update_fails(device, "not signed by enough trusted keys")


def test_rejects_model_signed_by_wrong_key(env: DeliveryEnv):
    """An attacker with the online keys but not the offline targets key adds a model."""
    device = _installed_v1(env)
    targets = Metadata[Targets].from_file(str(_metadata_path(env, "targets")))
    evil = DIGITS / "digits_int8.onnx"
    good_custom = next(iter(targets.signed.targets.values())).unrecognized_fields
    target = TargetFile.from_file("models/digits/9/digits_int8.onnx", str(evil))
    target.unrecognized_fields = json.loads(
        json.dumps(good_custom).replace('"release": 1', '"release": 9')
    )
    targets.signed.targets[target.path] = target
    targets.signed.version += 1
    targets.sign(generate_key(env.tmp / "attacker", "targets").signer)
    _metadata_path(env, "targets", targets.signed.version).write_bytes(targets.to_bytes())
    _metadata_path(env, "targets").write_bytes(targets.to_bytes())
    _republish_online(env)
    _update_fails(device, "not signed by enough trusted keys")


def test_rejects_below_threshold_signatures(tmp_path: Path, mosquitto: Broker):
    with delivery_env(tmp_path, mosquitto.url, role_keys={"targets": RoleKeys(2, 2)}) as env2:
        device = _installed_v1(env2)
        env2.publish(DIGITS / "digits_int8.onnx", version="1.1.0")
        version = env2.repo.load("targets", Targets).signed.version
        path = _metadata_path(env2, "targets", version)
        md = Metadata[Targets].from_file(str(path))
        md.signatures.popitem()  # one of the two required signatures
        path.write_bytes(md.to_bytes())
        _update_fails(device, "not signed by enough trusted keys")


def test_rejects_freeze_with_expired_timestamp(env: DeliveryEnv):
    device = _installed_v1(env)
    env.publish(DIGITS / "digits_int8.onnx", version="1.1.0")
    env.repo.refresh(("timestamp",), valid_for=timedelta(seconds=-60))  # a frozen, stale view
    _update_fails(device, "expired", "freeze")


def test_rejects_rollback_to_older_targets(env: DeliveryEnv):
    device = _installed_v1(env)
    old_timestamp = _metadata_path(env, "timestamp").read_bytes()
    env.publish(DIGITS / "digits_int8.onnx", version="1.1.0")
    assert device.manager().update("digits").state is UpdateState.ACTIVE
    _metadata_path(env, "timestamp").write_bytes(old_timestamp)  # replay the older view
    reason = _update_fails(device, "rollback attack refused")
    assert device.store.active("digits").version == 2  # type: ignore[union-attr]
    assert "version" in reason


def test_rejects_mix_and_match(env: DeliveryEnv):
    """Current snapshot + an older (validly signed) targets file served under the new name."""
    device = _installed_v1(env)
    old_version = env.repo.load("targets", Targets).signed.version
    env.publish(DIGITS / "digits_int8.onnx", version="1.1.0")
    new_version = env.repo.load("targets", Targets).signed.version
    shutil.copy(
        _metadata_path(env, "targets", old_version), _metadata_path(env, "targets", new_version)
    )
    _update_fails(device, "version")


def test_rejects_metadata_signed_by_revoked_targets_key(env: DeliveryEnv):
    device = _installed_v1(env)
    old_key = next(env.keys_dir.glob("targets-*.pem"))
    env.repo.rotate_key("targets")
    assert device.manager().update("digits").state is UpdateState.ACTIVE  # follows rotation
    stolen = load_key(env.keys_dir / "retired" / old_key.name)
    targets = env.repo.load("targets", Targets)
    targets.signed.version += 1
    targets.sign(stolen.signer)
    _metadata_path(env, "targets", targets.signed.version).write_bytes(targets.to_bytes())
    _metadata_path(env, "targets").write_bytes(targets.to_bytes())
    _republish_online(env)
    _update_fails(device, "not signed by enough trusted keys")


def test_follows_root_rotation_1_of_1_to_2_of_3_and_threshold_change(env: DeliveryEnv):
    device = _installed_v1(env)
    env.repo.rotate_key("root", RoleKeys(3, 2))
    env.repo.rotate_key("root", RoleKeys(3, 3))
    env.repo.rotate_key("root", RoleKeys(1, 1))
    env.publish(DIGITS / "digits_int8.onnx", version="1.1.0")
    assert device.manager().update("digits").state is UpdateState.ACTIVE
    trusted_root = json.loads((device.metadata_dir / "root.json").read_bytes())
    assert trusted_root["signed"]["version"] == 4


def test_rejects_rollout_target_not_in_signed_metadata(env: DeliveryEnv):
    device = _installed_v1(env)
    plan = env.repo.targets_dir / "rollouts" / "group-a.json"
    plan.parent.mkdir(parents=True)
    plan.write_text('{"digits": 1}')
    with device.updater() as updater:
        updater.refresh()
        assert updater.lookup("rollouts/group-a.json") is None
        with pytest.raises(UpdateError, match="not a model target"):
            updater._trusted("models/digits/7/evil.tflite")


def test_rejects_downgrade_to_an_older_signed_model(env: DeliveryEnv):
    device = _installed_v1(env)
    env.publish(DIGITS / "digits_int8.onnx", version="1.1.0")
    assert device.manager().update("digits").state is UpdateState.ACTIVE
    with env.repo.edit_targets() as targets:  # the operator withdraws release 2
        del targets.signed.targets["models/digits/2/digits_int8.onnx"]
    _update_fails(device, "downgrade refused")
    allowed = device.manager(allow_downgrade=True).update("digits")
    assert allowed.state is UpdateState.ACTIVE
    assert device.store.active("digits").version == 1  # type: ignore[union-attr]


def test_garbage_chunk_responses_are_ignored(tmp_path: Path, mosquitto: Broker):
    """Oversized, undecodable, wrong-checksum, wrong-offset and duplicate answers are dropped.

    Every chunk's good frame comes wrapped in garbage, and every third chunk's good frame is
    withheld the first time it is asked for (the device must notice and ask again).

    Regression: this test failed once on a busy machine. It withheld "every third frame the
    registry sent", counted across four worker threads without a lock, so which chunk lost its
    answer depended on thread scheduling; under load one chunk could lose it on every retry and
    use up the device's 4 attempts (a probe under load saw 3 of 4 used). Withholding is now
    decided per chunk (the first request only), so scheduling cannot change what is tested.
    """
    lock = threading.Lock()
    asked: Counter[tuple[str, int]] = Counter()
    chunk = FAST.chunk_bytes

    def mangle(_device: str, response: ChunkResponse) -> list[bytes]:
        if response.status != OK:
            return [response.encode()]
        key = (response.path, response.offset // chunk)
        with lock:
            asked[key] += 1
            withhold = key[1] % 3 == 1 and asked[key] == 1
        wrong_offset = ChunkResponse(
            response.id, response.path, response.offset + 1, OK, response.total, response.data
        )
        oversized = ChunkResponse(
            response.id,
            response.path,
            response.offset,
            OK,
            response.total,
            response.data + b"x" * 64,
        )
        bad_checksum = bytearray(response.encode())
        bad_checksum[-1] ^= 0x01
        frames = [
            b"\xff\xfe garbage",
            wrong_offset.encode(),
            oversized.encode(),
            bytes(bad_checksum),
        ]
        if withhold:
            return frames  # no good answer this time: the device must ask again
        return [*frames, response.encode(), response.encode()]  # good, then a duplicate

    with delivery_env(tmp_path, mosquitto.url, server_class=MisbehavingRegistry) as env:
        env.server.mangle = mangle  # type: ignore[attr-defined]
        release = env.publish(DIGITS / "digits_fp32.tflite", version="1.0.0")
        device = env.device()
        with device.updater() as updater:
            updater.refresh()
            path, _ = updater.download_latest("digits")
            assert updater.link.ignored > 20
        assert path.read_bytes() == (DIGITS / "digits_fp32.tflite").read_bytes()
        assert release.length == path.stat().st_size
        withheld = [key for key in asked if key[1] % 3 == 1]
        assert len(withheld) >= 5
        assert all(asked[key] >= 2 for key in withheld)  # each was asked for again


def test_out_of_order_chunk_responses_are_reassembled_in_place(tmp_path: Path, mosquitto: Broker):
    """Frames of a range arrive swapped in pairs: the file still assembles byte for byte."""
    lock = threading.Lock()
    held: dict[tuple[str, int], bytes] = {}
    seen: set[tuple[str, int]] = set()
    chunk = FAST.chunk_bytes
    swapped = {"n": 0}

    def swap_pairs(_device: str, response: ChunkResponse) -> list[bytes]:
        if response.status != OK:
            return [response.encode()]
        index = response.offset // chunk
        with lock:
            first_time = (response.path, index) not in seen
            seen.add((response.path, index))
            has_next = response.offset + chunk < response.total
            if index % 4 == 0 and first_time and has_next:
                held[(response.path, index)] = response.encode()
                return []  # sent after the next chunk
            earlier = held.pop((response.path, index - 1), None)
        if earlier is None:
            return [response.encode()]
        swapped["n"] += 1
        return [response.encode(), earlier]

    with delivery_env(tmp_path, mosquitto.url, server_class=MisbehavingRegistry) as env:
        env.server.mangle = swap_pairs  # type: ignore[attr-defined]
        env.publish(DIGITS.parent / "digits32" / "digits32_int8.tflite", version="1.0.0")
        device = env.device()
        with device.updater() as updater:
            updater.refresh()
            path, release = updater.download_latest("digits")
        expected = (DIGITS.parent / "digits32" / "digits32_int8.tflite").read_bytes()
        assert path.read_bytes() == expected and release.length == len(expected)
        assert swapped["n"] >= 20


def test_response_addressed_to_another_device_is_ignored(env: DeliveryEnv):
    env.publish(DIGITS / "digits_fp32.tflite", version="1.0.0")
    victim = env.device("victim")
    with MqttClient(env.broker_url, "rogue") as rogue:
        rogue.connect()
        fake = ChunkResponse(
            "0123456789abcdef", "metadata/timestamp.json", 0, OK, 10, b"0123456789"
        )
        with victim.updater() as updater:
            for _ in range(20):  # answers nobody asked for, with valid hashes
                rogue.publish(topics.registry_response("victim"), fake.encode(), qos=1)
            updater.refresh()
            assert updater.latest("digits").release == 1
            path, _release = updater.download_latest("digits")
            assert path.is_file()


def test_registry_that_stops_mid_transfer_fails_cleanly_then_resumes(
    tmp_path: Path, mosquitto: Broker
):
    served = {"n": 0, "limit": 10**9}

    def stop_after_limit(_device: str, response: ChunkResponse) -> list[bytes]:
        if response.path.startswith("targets/"):
            served["n"] += 1
            if served["n"] > served["limit"]:
                return []  # the registry has gone silent
        return [response.encode()]

    with delivery_env(tmp_path, mosquitto.url, server_class=MisbehavingRegistry) as env:
        env.server.mangle = stop_after_limit  # type: ignore[attr-defined]
        device = _installed_v1(env)
        release = env.publish(
            DIGITS.parent / "digits32" / "digits32_int8.tflite", "digits", "2.0.0"
        )
        served["n"], served["limit"] = 0, 30
        _update_fails(device, "did not answer")
        served["limit"] = 10**9
        before = env.server.served_bytes(device.device_id, "targets/")
        assert device.manager().update("digits").state is UpdateState.ACTIVE
        chunk = device.settings.chunk_bytes
        fetched_again = env.server.served_bytes(device.device_id, "targets/") - before
        assert fetched_again < release.length - 20 * chunk  # resumed, did not start over


def test_rejects_a_claimed_size_of_16_tib_before_planning_for_it(tmp_path: Path, mosquitto: Broker):
    """Regression: the fetcher turned the first answer's claimed total into a queue of chunk
    indices before the size limit applied (a claim of 2**44 used 1.4 GB before MemoryError)."""
    import resource

    chunk = FAST.chunk_bytes

    def claim_16_tib(_device: str, response: ChunkResponse) -> list[bytes]:
        if response.status != OK or not response.path.startswith("metadata/"):
            return [response.encode()]
        padded = bytes(response.data).ljust(chunk, b" ")  # a full first chunk, as a liar sends
        return [replace(response, total=2**44, data=padded, crc32=None).encode()]

    with delivery_env(tmp_path, mosquitto.url, server_class=MisbehavingRegistry) as env:
        env.server.mangle = claim_16_tib  # type: ignore[attr-defined]
        device = env.device()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with device.updater() as updater, pytest.raises(UpdateError, match="17592186044416 bytes"):
            updater.refresh()
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mib < 100, f"the peak grew by {grown_mib:.0f} MiB"


@pytest.mark.parametrize(
    ("chunk", "reason"),
    [
        (1, "below the registry's minimum of 256 bytes"),
        (4096, "range of 4096 frames exceeds the 1024 frames one request may ask for"),
    ],
)
def test_rejects_frame_amplification_requests(tmp_path: Path, mosquitto: Broker, chunk, reason):
    """Regression: the registry accepted chunk=1 (one 16 MiB range cost 16.7 million frames)
    and let a request dearer than the burst through, only putting the device in debt."""
    with delivery_env(tmp_path, mosquitto.url) as env:
        env.publish(DIGITS / "digits_fp32.tflite", version="1.0.0")
        answers: queue.Queue[ChunkResponse] = queue.Queue()
        with MqttClient(env.broker_url, "greedy") as greedy:
            greedy.connect()
            greedy.subscribe(
                topics.registry_response("greedy"),
                lambda m: answers.put(decode_response(m.payload)),  # type: ignore[arg-type]
            )
            request = ChunkRequest("0123456789abcdef", "metadata/1.root.json", 0, 16 << 20, chunk)
            greedy.publish(topics.registry_request("greedy"), request.encode())
            answer = answers.get(timeout=10)
        assert answer.status == BAD_REQUEST and reason in answer.reason
        assert env.server.served_bytes("greedy") == 0  # not one frame of file bytes


def test_a_flood_of_invented_device_ids_keeps_the_registry_bounded(
    tmp_path: Path, mosquitto: Broker
):
    """Regression (issue 12, item 7): the registry kept a served-chunk count for every
    (device, path) it ever answered, and a rate bucket for every id not yet idle, so a client
    inventing device ids grew both for as long as the registry ran. A real device still
    updates during and after the flood."""
    from edge_agent.fleet.registry import RegistrySettings

    settings = RegistrySettings(notify_poll_s=0.2, tracked_devices=32)
    with delivery_env(tmp_path, mosquitto.url, settings=settings) as env:
        env.publish(DIGITS / "digits_fp32.tflite", version="1.0.0")
        flood = 400
        with MqttClient(env.broker_url, "flooder") as flooder:
            flooder.connect()
            for i in range(flood):
                request = ChunkRequest(f"{i:016x}", "metadata/1.root.json", 0, 256, 256)
                flooder.publish(topics.registry_request(f"ghost-{i}"), request.encode())
            wait_for(
                lambda: env.server.served_bytes(f"ghost-{flood - 1}") == 256, 20, "the last ghost"
            )
        assert len(env.server.limiter) <= 32
        assert len(env.server.served) <= 4 * 32
        device = env.device()
        assert device.manager().update("digits").state is UpdateState.ACTIVE
        assert env.server.served_bytes(device.device_id, "targets/") > 0
        assert len(env.server.limiter) <= 32
