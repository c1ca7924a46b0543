"""The status document names the config sections that wait for a restart."""

from __future__ import annotations

from edge_agent.wire import Status
from edge_agent.wire.states import DeviceState


def test_restart_needed_round_trips_and_older_documents_have_none():
    status = Status(state=DeviceState.ONLINE, restart_needed=["serving", "telemetry"], time=1.0)
    assert Status.decode(status.encode()).restart_needed == ["serving", "telemetry"]
    assert Status.decode(b'{"state": "online", "time": 1}').restart_needed == []


def test_restart_needed_from_the_wire_is_cleaned():
    hostile = (
        b'{"state": "online", "restart_needed": ["ok", 3, null, {"x": 1}, "' + (b"y" * 500) + b'"]}'
    )
    names = Status.decode(hostile).restart_needed
    assert names[:2] == ["ok", "3"] and len(names) == 3 and len(names[2]) == 64
    assert Status.decode(b'{"state": "online", "restart_needed": "serving"}').restart_needed == []
    many = b'{"state": "online", "restart_needed": [' + b",".join([b'"s"'] * 100) + b"]}"
    assert len(Status.decode(many).restart_needed) == 32
