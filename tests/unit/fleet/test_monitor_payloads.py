"""Parsing what devices publish: every shape of garbage is a PayloadError with a reason."""

from __future__ import annotations

import json

import pytest

from edge_agent.fleet.monitor.payloads import (
    DriftRow,
    EventRow,
    LoadRow,
    PayloadError,
    StatusRow,
    TelemetryRow,
    device_time,
    parse_message,
)
from tests.fakes import fleet_feed as feed

NOW = 1_800_000_000.0
T = "ea/v1/cam-1/telemetry"


def parse(topic: str, payload: bytes, max_bytes: int = 1 << 20):  # type: ignore[no-untyped-def]
    return parse_message(topic, payload, NOW, max_bytes)


def test_telemetry_envelope_becomes_sensor_and_load_rows() -> None:
    rows = parse(T, feed.telemetry("cam-1", 7, errors=2, battery_pct=40.0, created=NOW - 5)).rows
    tele, load = rows
    assert isinstance(tele, TelemetryRow) and isinstance(load, LoadRow)
    assert tele.key == "cam-1/ob1-7" and tele.time == NOW - 5 and tele.battery_pct == 40.0
    assert load.model == "digits" and load.version == "1" and load.count == 4 and load.errors == 2
    assert load.p95 == pytest.approx(7.0, rel=0.02)  # DDSketch p95 of [5, 6, 7, 20] ms
    assert json.loads(load.sketch or "{}")["count"] == 4


def test_status_and_last_will() -> None:
    (status,) = parse("ea/v1/cam-1/status", feed.status("cam-1", when=NOW - 1)).rows
    assert isinstance(status, StatusRow) and status.models == (("digits", "1", "cpu", False, None),)
    pi = feed.status("cam-2", models=[("digits", "2", "xnnpack", "digits_int8.tflite")])
    (on_variant,) = parse("ea/v1/cam-2/status", pi).rows
    assert isinstance(on_variant, StatusRow)
    assert on_variant.models == (("digits", "2", "xnnpack", False, "digits_int8.tflite"),)
    (will,) = parse("ea/v1/cam-1/status", feed.last_will("cam-1")).rows
    assert isinstance(will, StatusRow) and will.state == "offline" and will.time == NOW
    assert will.models == ()


def test_drift_window_and_alarm_event() -> None:
    messages = feed.drift_messages("digits", 3.0)
    kinds = [type(parse("ea/v1/cam-1/drift", m).rows[0]) for m in messages]
    assert kinds.count(DriftRow) == 3 and EventRow in kinds
    window = parse("ea/v1/cam-1/drift", messages[0]).rows[0]
    assert isinstance(window, DriftRow) and window.profile is not None
    assert json.loads(window.features)["f0"] >= 1.0


def test_rollout_events_are_keyed_by_content() -> None:
    payload = feed.rollout("digits", "2", "rejected", "agreement low", agreement=0.4)
    first = parse("ea/v1/cam-1/rollout", payload).rows[0]
    again = parse("ea/v1/cam-1/rollout", payload).rows[0]
    other = parse("ea/v1/cam-2/rollout", payload).rows[0]
    assert isinstance(first, EventRow) and first.key == again.key != other.key
    assert json.loads(first.detail or "{}")["agreement"] == 0.4


def test_only_the_first_sample_chunk_is_stored() -> None:
    chunks = feed.sample_chunks("d" * 32, size=300, chunk=128)
    assert len(parse("ea/v1/cam-1/samples", chunks[0]).rows) == 1
    assert parse("ea/v1/cam-1/samples", chunks[1]).skipped == "sample_chunk"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (T, b"\xff\xfe", "not_json"),
        (T, b"[" * 1000, "not_json"),
        (T, b"[1]", "wrong_shape"),
        (T, b'{"id": 3, "data": {}}', "wrong_shape"),
        (T, b'{"id": "x-1", "data": 5}', "wrong_shape"),
        (T, b'{"id": "' + b"x" * 500 + b'", "data": {}}', "wrong_shape"),
        ("ea/v1/cam-1/status", b'{"state": "sleepy"}', "wrong_shape"),
        ("ea/v1/cam-1/rollout", b'{"state": null}', "wrong_shape"),
        ("ea/v1/cam-1/drift", b'{"id": "x-1", "data": {"signals": {}}}', "wrong_shape"),
        ("ea/v1/cam-1/samples", b"no newline", "wrong_shape"),
        ("ea/v1/cam-1/cmd", b"{}", "bad_topic"),
        ("ea/v1/+/telemetry", b"{}", "bad_topic"),
        ("something/else", b"{}", "bad_topic"),
        (T, b" " * 2048, "too_large"),
    ],
)
def test_garbage_is_a_payload_error_with_its_reason(
    topic: str, payload: bytes, reason: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse(topic, payload, max_bytes=1024)
    assert caught.value.reason == reason


def test_wrongly_typed_fields_become_none_not_errors() -> None:
    data = {
        "system": {"battery_pct": "full", "max_temp_c": float("nan") if False else True},
        "load": {"models": [{"model": "m", "count": "many", "latency_ms": []}, 5]},
    }
    rows = parse(T, json.dumps({"id": "o-1", "data": data}).encode()).rows
    tele, load = rows
    assert isinstance(tele, TelemetryRow) and tele.battery_pct is None and tele.max_temp_c is None
    assert isinstance(load, LoadRow) and load.count == 0 and load.p95 is None


def test_device_time_distrusts_clocks_far_off() -> None:
    assert device_time(NOW - 10, NOW) == NOW - 10
    assert device_time(NOW + 3600, NOW) == NOW
    assert device_time(0, NOW) == NOW
    assert device_time("yesterday", NOW) == NOW
