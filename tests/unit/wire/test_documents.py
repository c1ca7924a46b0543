"""Every wire document survives encode -> decode unchanged, and keeps the agents' byte shape."""

from __future__ import annotations

import json

import pytest

from edge_agent.errors import WireError
from edge_agent.wire import (
    SCHEMA_VERSION,
    Command,
    DeviceState,
    DriftAlarmEvent,
    DriftReport,
    Envelope,
    ModelStatus,
    PowerPolicyEvent,
    RegistryNotice,
    SampleChunkHeader,
    Status,
    SwapEvent,
    SwapState,
    TelemetryReport,
    Transition,
    UpdateState,
    decode_rollout,
    decode_sample_chunk,
    decode_telemetry,
    encode_sample_chunk,
)
from edge_agent.wire.states import FAILED_STATES, ROLLOUT_STATES
from tests.fakes import fleet_feed as feed


def test_status_round_trip_and_last_will() -> None:
    status = Status(
        device_id="cam-1",
        state=DeviceState.DEGRADED,
        agent_version="0.1.0",
        device_class="rpi5",
        models=[ModelStatus(name="digits", version="3", delegate="xnnpack", degraded=True)],
        api="127.0.0.1:8080",
        uptime_s=12.5,
        pipelines=[{"name": "cam", "processed": 40}],
        time=1_800_000_000.0,
    )
    assert Status.decode(status.encode()) == status
    assert json.loads(status.encode())["v"] == SCHEMA_VERSION
    will = Status.last_will("cam-1")
    assert json.loads(will.encode()) == {"device_id": "cam-1", "state": "offline"}
    assert Status.decode(will.encode()).is_last_will and not status.is_last_will


def test_telemetry_report_keeps_every_field_the_agent_sends() -> None:
    raw = json.loads(feed.telemetry("cam-1", 3, errors=1))
    envelope = Envelope.decode(json.dumps(raw).encode())
    assert envelope.id == "ob1-3" and envelope.seq == 3
    report = decode_telemetry(envelope.data)
    assert isinstance(report, TelemetryReport)
    assert report.load.models[0].count == 4 and report.load.models[0].errors == 1
    again = json.loads(report.encode())
    for key in ("thermal", "power_supplies", "timestamp"):  # kept although not typed
        assert key in again["system"]
    assert again["load"]["models"][0]["sketch"] == raw["data"]["load"]["models"][0]["sketch"]
    assert TelemetryReport.decode(report.encode()) == report


def test_power_policy_event() -> None:
    event = PowerPolicyEvent(event="power_policy", mode="saving", reasons=["battery 12%"])
    decoded = decode_telemetry(json.loads(event.encode()))
    assert decoded == event and isinstance(decoded, PowerPolicyEvent)
    assert decoded.reason() == "battery 12%"


def test_drift_report_and_alarm_event_from_a_real_detector() -> None:
    raw = feed.drift_reports("digits", 3.0)[-1]
    report = DriftReport.model_validate(raw)
    assert DriftReport.decode(report.encode()) == report
    assert report.signal("input").ratios()["f0"] >= 1.0
    alarm = DriftAlarmEvent.model_validate({"model": "digits", "signal": "input", "to": "alarm"})
    assert json.loads(alarm.encode())["event"] == "drift_alarm"
    assert DriftAlarmEvent.decode(alarm.encode()) == alarm


def test_rollout_events_tell_transitions_from_swap_events() -> None:
    transition = Transition(
        device="cam-1",
        model="digits",
        version=4,
        state=UpdateState.FAILED,
        reason="sha256 mismatch",
        timestamp=1_800_000_000.0,
    )
    swap = SwapEvent(
        model="digits",
        version="4",
        state=SwapState.REJECTED,
        reason="agreement 0.4",
        time=1_800_000_000.0,
        evidence={"agreement": 0.4},
    )
    assert decode_rollout(transition.encode()) == transition
    assert decode_rollout(swap.encode()) == swap
    assert {UpdateState.FAILED.value, SwapState.REJECTED.value} <= FAILED_STATES <= ROLLOUT_STATES


def test_commands() -> None:
    command = Command(name="sample-now", count=5, model="digits")
    assert Command.decode(command.encode()) == command
    assert json.loads(command.encode())["command"] == "sample-now"
    assert Command.decode(b'{"command": "sample-now", "count": 1e9}').count == 1000
    with pytest.raises(WireError, match="is not a number"):  # was an OverflowError (issue 12)
        Command.decode(b'{"command": "sample-now", "count": 1e999}')
    with pytest.raises(WireError) as refused:
        Command.decode(b'{"command": "install"}')
    assert refused.value.reason == "unknown_command"


def test_sample_chunk() -> None:
    header = SampleChunkHeader(id="a" * 32, offset=0, size=3, sha256="ab" * 32, meta={"x": 1})
    decoded, data = decode_sample_chunk(encode_sample_chunk(header, b"xyz"))
    assert decoded == header and data == b"xyz"
    with pytest.raises(WireError):
        decode_sample_chunk(encode_sample_chunk(header, b"four"))


def test_a_newer_schema_version_is_refused_not_half_read() -> None:
    with pytest.raises(WireError) as refused:
        Status.decode(b'{"v": 2, "state": "online"}')
    assert refused.value.reason == "unknown_version"
    assert Status.decode(b'{"state": "online"}').v == 1  # agents before the field


def test_registry_notice() -> None:
    notice = RegistryNotice(timestamp_version=7)
    assert RegistryNotice.decode(notice.encode()) == notice
    assert RegistryNotice.decode(b'{"timestamp_version": 3}').timestamp_version == 3


@pytest.mark.parametrize(
    "payload",
    [
        b'{"timestamp_version": 1e999}',  # was an OverflowError on paho's thread
        b'{"timestamp_version": "7"}',
        b'{"timestamp_version": -1}',
        b"[" * 100_000,  # was a RecursionError
        b"{}",
    ],
)
def test_a_malformed_registry_notice_is_a_wire_error(payload: bytes) -> None:
    with pytest.raises(WireError):
        RegistryNotice.decode(payload)
