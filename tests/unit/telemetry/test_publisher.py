"""The outbox publisher through the in-memory transport: drained in order once connected.

The broker-side faults (outage, kill -9, 100k records) are tests/integration/test_outbox_faults.py;
here the logic: nothing goes out while offline, everything goes out in priority order once
connected, status is retained, and acknowledged records leave the outbox.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.telemetry.outbox import Outbox, Priority
from edge_agent.telemetry.publisher import OutboxPublisher
from edge_agent.transport.client import Message
from edge_agent.transport.memory import MemoryBroker
from edge_agent.transport.topics import DeviceChannel
from tests.fixtures.wait import wait_for


def test_records_wait_offline_then_drain_in_priority_order_and_leave_the_outbox(tmp_path: Path):
    broker = MemoryBroker()
    device, monitor = broker.client("dev1"), broker.client("monitor")
    monitor.connect()
    seen: list[Message] = []
    monitor.subscribe("ea/v1/dev1/#", seen.append)
    with Outbox(tmp_path / "outbox.db", max_bytes=100_000) as outbox:
        publisher = OutboxPublisher(outbox, "dev1", device)
        publisher.start()
        try:
            outbox.enqueue(DeviceChannel.TELEMETRY, Priority.TELEMETRY, {"n": 1})
            outbox.enqueue(DeviceChannel.DRIFT, Priority.DRIFT, {"n": 2})
            outbox.enqueue(DeviceChannel.STATUS, Priority.STATUS, {"n": 3})
            assert publisher.published == 0 and len(outbox) == 3  # offline: all kept
            device.connect()
            wait_for(lambda: len(outbox) == 0, 10, "the outbox to drain")
        finally:
            publisher.stop()
        assert [json.loads(m.payload)["data"]["n"] for m in seen] == [3, 2, 1]
        assert [m.topic for m in seen] == [
            "ea/v1/dev1/status",
            "ea/v1/dev1/drift",
            "ea/v1/dev1/telemetry",
        ]
        assert broker.retained("ea/v1/dev1/status") is not None  # status only
        assert broker.retained("ea/v1/dev1/telemetry") is None
        assert (publisher.published, publisher.acknowledged, publisher.republished) == (3, 3, 0)
