"""Bounded label cardinality: the device and version caps."""

from __future__ import annotations

from edge_agent.fleet.monitor.metrics import OTHER, fold_versions, select_labelled


def test_device_cap_keeps_alerting_then_offline_devices() -> None:
    devices = [{"device_id": f"d{i:03d}", "online": True, "alerts": 0} for i in range(500)]
    devices[400]["alerts"] = 2
    devices[300]["online"] = False
    labelled, rest = select_labelled(devices, 10)
    ids = [d["device_id"] for d in labelled]
    assert len(labelled) == 10 and len(rest) == 490
    assert ids[:2] == ["d400", "d300"]


def test_versions_beyond_the_cap_fold_into_other() -> None:
    versions = {"m": {str(v): 100 - v for v in range(60)}}
    rows = fold_versions(versions, 50)
    assert len(rows) == 51 and rows[-1] == ("m", OTHER, sum(100 - v for v in range(50, 60)))
