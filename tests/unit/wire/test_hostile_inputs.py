"""Hostile bytes against every decoder: only WireError escapes, and what decodes is clean.

"Clean" is what the stores need: every string encodes as strict UTF-8 (no lone surrogates),
holds no NUL, and every number is finite. The inputs are random bytes, random JSON with
hostile strings and numbers, and real documents with one field replaced by something hostile.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.errors import WireError
from edge_agent.fleet.monitor.payloads import parse_message
from edge_agent.wire import (
    Command,
    Document,
    Envelope,
    RegistryNotice,
    Status,
    decode_drift,
    decode_rollout,
    decode_sample_chunk,
    decode_telemetry,
)
from tests.fakes import fleet_feed as feed
from tests.unit.wire.strategies import encode, field_paths, json_value, replace_at

NOW = 1_800_000_000.0


def assert_clean(value: Any) -> None:
    if isinstance(value, str):
        value.encode("utf-8")  # raises on a lone surrogate
        assert "\x00" not in value
    elif isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_clean(key)
            assert_clean(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            assert_clean(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        assert_clean(dataclasses.asdict(value))
    elif isinstance(value, Document):
        assert_clean(value.model_dump())
        assert_clean(json.loads(value.encode()))


def envelope_of(data: bytes) -> Any:
    return decode_telemetry(Envelope.decode(data).data)


def drift_of(data: bytes) -> Any:
    return decode_drift(Envelope.decode(data).data)


DECODERS: dict[str, Callable[[bytes], Any]] = {
    "status": Status.decode,
    "telemetry": envelope_of,
    "drift": drift_of,
    "rollout": decode_rollout,
    "command": Command.decode,
    "notice": RegistryNotice.decode,
    "sample": lambda data: decode_sample_chunk(data)[0],
}

REAL: dict[str, bytes] = {
    "status": feed.status("cam-1"),
    "telemetry": feed.telemetry("cam-1", 1),
    "drift": feed.drift_messages("digits", 3.0)[0],
    "rollout": feed.rollout("digits", "2", "rejected", "low", agreement=0.4),
    "command": b'{"command": "sample-now", "count": 3, "model": "digits"}',
    "notice": b'{"v": 1, "timestamp_version": 12}',
    "sample": feed.sample_chunks("d" * 32)[0],
}


CHANNELS = {"status": "status", "telemetry": "telemetry", "drift": "drift", "rollout": "rollout"}
CHANNELS["sample"] = "samples"


def decode_or_refuse(kind: str, data: bytes) -> None:
    """The decoder, and the monitor's parser for the channel, refuse or return clean data."""
    try:
        assert_clean(DECODERS[kind](data))
    except WireError as exc:
        assert exc.reason
    if kind in CHANNELS:
        try:
            parsed = parse_message(f"ea/v1/cam-1/{CHANNELS[kind]}", data, NOW, 1 << 20)
        except WireError as exc:
            assert exc.reason
        else:
            for row in parsed.rows:
                assert_clean(row)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(kind=st.sampled_from(sorted(DECODERS)), data=st.binary(max_size=300))
def test_random_bytes_are_refused_with_wire_error(kind: str, data: bytes) -> None:
    decode_or_refuse(kind, data)


@FAST
@given(kind=st.sampled_from(sorted(DECODERS)), value=json_value)
def test_random_json_is_refused_or_clean(kind: str, value: Any) -> None:
    data = encode(value)
    if kind == "sample":
        data = data + b"\n" + b"xy"
    decode_or_refuse(kind, data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(REAL)), pick=st.integers(min_value=0), new=json_value)
def test_a_real_document_with_one_hostile_field_is_refused_or_clean(
    kind: str, pick: int, new: Any
) -> None:
    real = REAL[kind]
    head, sep, tail = real.partition(b"\n") if kind == "sample" else (real, b"", b"")
    document = json.loads(head)
    paths = field_paths(document)
    mutated = replace_at(document, paths[pick % len(paths)], new)
    decode_or_refuse(kind, encode(mutated) + sep + tail)


@pytest.mark.parametrize("kind", sorted(DECODERS))
@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"state": "online", "time": 1e999, "uptime_s": -1e999, "v": 1}',
        b'{"state": "online", "n": ' + b"9" * 5000 + b"}",
        b"\xed\xa0\x80",  # a surrogate encoded as UTF-8: not valid UTF-8
        b"",
    ],
)
def test_known_hostile_shapes(kind: str, data: bytes) -> None:
    decode_or_refuse(kind, data + (b"\n" if kind == "sample" else b""))
