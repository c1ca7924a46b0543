"""Hostile messages on every channel the monitor ingests, through parse and a real SQLite store.

``tests/unit/wire/test_hostile_inputs.py`` checks that the wire decoders (and ``parse_message``)
raise only ``WireError`` and return clean values. This goes one step further, per channel and
with hostile topics too: what ingest does with a message. Either ``parse_message`` refuses it
with a ``WireError`` and its dead letter is stored, or its rows are written by the real store
(``write_batch``, one transaction, as ingest does) without the database refusing them: a row
the store refused would cost ingest a bisection per batch. Each message is handled within a
deadline, and a message at the size limit within a memory bound.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.errors import WireError
from edge_agent.fleet.monitor.ingest import IngestSettings
from edge_agent.fleet.monitor.payloads import parse_message
from edge_agent.fleet.monitor.quarantine import dead_letter
from edge_agent.fleet.monitor.store import Store, open_store
from edge_agent.transport.topics import DeviceChannel
from edge_agent.wire.states import SwapState
from edge_agent.wire.transitions import SwapEvent
from tests.fakes import fleet_feed as feed
from tests.unit.wire.strategies import encode, field_paths, hostile_text, json_value, replace_at

NOW = 1_800_000_000.0
MAX_BYTES = IngestSettings().max_payload_bytes
DEADLINE_S = 2.0

REAL: dict[str, bytes] = {
    "status": feed.status("cam-1"),
    "status_last_will": feed.last_will("cam-1"),
    "telemetry": feed.telemetry("cam-1", 1),
    "drift": feed.drift_messages("digits", 3.0)[0],
    "rollout": feed.rollout("digits", "2", "rejected", "low", agreement=0.4),
    "rollout_swap": SwapEvent(
        model="digits", version="2", state=SwapState.SHADOW, reason="x", time=NOW
    ).encode(),
    "samples": feed.sample_chunks("d" * 32)[0],
}
CHANNEL = {
    "status": "status",
    "status_last_will": "status",
    "telemetry": "telemetry",
    "drift": "drift",
    "rollout": "rollout",
    "rollout_swap": "rollout",
    "samples": "samples",
}
CHANNELS = sorted({c.value for c in DeviceChannel} | {"results/cam", "unknown", ""})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path_factory.mktemp('monitor') / 'm.db'}")
    yield opened
    opened.close()


def ingest_one(store: Store, topic: str, payload: bytes) -> str:
    """What ingest does with one message: ``stored``, ``skipped`` or the dead letter's reason."""
    started = time.perf_counter()
    try:
        parsed = parse_message(topic, payload, NOW, MAX_BYTES)
    except WireError as exc:
        assert exc.reason
        letter = dead_letter(topic, payload, None, exc.reason, str(exc), NOW)
        store.write_dead_letters([letter], 50)
        outcome = exc.reason
    else:
        if parsed.rows:
            store.write_batch(parsed.rows, NOW)  # StoreError here is the bug this looks for
        outcome = "stored" if parsed.rows else "skipped"
    assert time.perf_counter() - started < DEADLINE_S
    return outcome


RELAXED = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


@RELAXED
@given(channel=st.sampled_from(CHANNELS), data=st.binary(max_size=300))
def test_random_bytes_on_any_channel_are_quarantined(
    store: Store, channel: str, data: bytes
) -> None:
    assert ingest_one(store, f"ea/v1/cam-1/{channel}", data) not in ("stored",)


@RELAXED
@given(channel=st.sampled_from(CHANNELS), value=json_value)
def test_random_json_on_any_channel_is_stored_or_quarantined(
    store: Store, channel: str, value: Any
) -> None:
    ingest_one(store, f"ea/v1/cam-1/{channel}", encode(value))


@RELAXED
@given(device=hostile_text, kind=st.sampled_from(sorted(REAL)))
def test_a_real_message_under_a_hostile_topic_is_stored_or_quarantined(
    store: Store, device: str, kind: str
) -> None:
    ingest_one(store, f"ea/v1/{device}/{CHANNEL[kind]}", REAL[kind])


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(sorted(REAL)), pick=st.integers(min_value=0), new=json_value)
def test_a_real_message_with_one_hostile_field_is_stored_or_quarantined(
    store: Store, kind: str, pick: int, new: Any
) -> None:
    real = REAL[kind]
    head, sep, tail = real.partition(b"\n") if kind == "samples" else (real, b"", b"")
    document = json.loads(head)
    paths = field_paths(document)
    mutated = encode(replace_at(document, paths[pick % len(paths)], new)) + sep + tail
    ingest_one(store, f"ea/v1/cam-1/{CHANNEL[kind]}", mutated)


def test_the_real_messages_are_stored(store: Store) -> None:
    for kind, payload in REAL.items():
        assert ingest_one(store, f"ea/v1/cam-1/{CHANNEL[kind]}", payload) in ("stored", "skipped")


@pytest.mark.parametrize(
    ("channel", "shape"),
    [
        (channel, shape)
        for channel in ("status", "telemetry", "drift", "rollout", "samples")
        for shape in ("deep_list", "huge_number", "over_the_limit")
    ]
    + [
        (channel, shape)
        for channel in ("status", "telemetry")
        for shape in ("long_string", "many_keys")
    ],
)
def test_a_message_at_the_size_limit_is_handled_in_bounded_memory(
    store: Store, channel: str, shape: str
) -> None:
    """The largest message ingest reads (``max_payload_bytes``) in its worst shapes: memory
    stays within a small multiple of the message and time within the deadline."""
    size = MAX_BYTES - 64
    payload = {
        "deep_list": b"[" * (size // 2) + b"]" * (size // 2),
        "long_string": b'{"v": 1, "state": "online", "device_id": "'
        + b"\\u0000" * (size // 6)
        + b'"}',
        "many_keys": b"{"
        + b",".join(b'"k%d": %d' % (i, i) for i in range(size // 20))
        + b', "v": 1, "state": "online"}',
        "huge_number": b'{"v": 1, "state": "online", "time": ' + b"9" * 4000 + b"}",
        "over_the_limit": b" " * (MAX_BYTES + 1),
    }[shape]
    tracemalloc.start()
    try:
        ingest_one(store, f"ea/v1/cam-1/{channel}", payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * MAX_BYTES, f"peak {peak / 2**20:.1f} MiB"
