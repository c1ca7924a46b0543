"""The topic scheme: every topic comes from one module and parses back."""

from __future__ import annotations

import pytest

from edge_agent.transport import topics
from edge_agent.transport.topics import DeviceChannel


def test_device_topics_follow_the_scheme_and_parse_back():
    for channel in DeviceChannel:
        topic = topics.device_topic("cam-01", channel)
        assert topic == f"ea/v1/cam-01/{channel.value}"
        parsed = topics.parse(topic)
        assert parsed is not None
        assert (parsed.device_id, parsed.channel) == ("cam-01", channel.value)


def test_registry_topics():
    assert topics.registry_notify() == "ea/v1/registry/notify"
    assert topics.registry_request("cam-01") == "ea/v1/registry/req/cam-01"
    assert topics.registry_response("cam-01") == "ea/v1/registry/resp/cam-01"
    parsed = topics.parse("ea/v1/registry/req/cam-01")
    assert parsed is not None and parsed.channel == "registry/req"


@pytest.mark.parametrize("device_id", ["a/b", "+", "#", "", "registry", "x" * 65, "-lead"])
def test_device_ids_that_would_break_topics_are_rejected(device_id):
    with pytest.raises(ValueError, match="invalid device id"):
        topics.device_topic(device_id, DeviceChannel.STATUS)


@pytest.mark.parametrize(
    "topic",
    [
        "ea/v1/cam/unknown",
        "ea/v2/cam/status",
        "other/x/y/z",
        "ea/v1/cam/status/extra",
        "ea/v1/registry/notify",
    ],
)
def test_foreign_topics_parse_to_none(topic):
    assert topics.parse(topic) is None


def test_wildcard_filters():
    assert topics.all_devices(DeviceChannel.TELEMETRY) == "ea/v1/+/telemetry"
    assert topics.registry_requests_filter() == "ea/v1/registry/req/+"
