"""The in-memory MQTT transport (edge_agent/transport/memory.py) behaves as the broker does."""

from __future__ import annotations

import pytest

from edge_agent.transport.client import LastWill, Message
from edge_agent.transport.memory import MemoryBroker, topic_matches, validate_filter
from tests.fixtures.mqtt_topics import MATCH_CASES


@pytest.mark.parametrize(("topic_filter", "topic", "delivered"), MATCH_CASES)
def test_topic_matching_follows_the_broker(topic_filter: str, topic: str, delivered: bool):
    assert topic_matches(topic_filter, topic) is delivered


@pytest.mark.parametrize("topic_filter", ["", "a/#/b", "a#", "a/b+", "+a/b", "a/\0"])
def test_invalid_filters_are_refused(topic_filter: str):
    broker = MemoryBroker()
    client = broker.client("c")
    client.connect()
    with pytest.raises(ValueError, match="invalid topic filter"):
        validate_filter(topic_filter)
    with pytest.raises(ValueError, match="invalid topic filter"):
        client.subscribe(topic_filter, lambda _m: None)


@pytest.mark.parametrize("topic", ["", "a/+", "a/#"])
def test_publishing_to_a_wildcard_is_refused(topic: str):
    client = MemoryBroker().client("c")
    client.connect()
    with pytest.raises(ValueError, match="invalid topic"):
        client.publish(topic, b"x")


def test_messages_reach_every_matching_subscriber_once_per_handler():
    broker = MemoryBroker()
    sender, receiver, other = broker.client("s"), broker.client("r"), broker.client("o")
    for c in (sender, receiver, other):
        c.connect()
    got: list[tuple[str, Message]] = []
    assert receiver.subscribe("ea/v1/+/status", lambda m: got.append(("plus", m)))
    assert receiver.subscribe("ea/#", lambda m: got.append(("hash", m)))
    assert other.subscribe("ea/v1/cam-2/status", lambda m: got.append(("other", m)))
    info = sender.publish("ea/v1/cam-1/status", "online", qos=1)
    assert info.is_published()
    assert sorted(name for name, _m in got) == ["hash", "plus"]
    assert got[0][1] == Message("ea/v1/cam-1/status", b"online", 1, retain=False)


def test_retained_messages_reach_later_subscribers_and_an_empty_payload_clears_them():
    broker = MemoryBroker()
    device, monitor = broker.client("dev"), broker.client("mon")
    device.connect()
    monitor.connect()
    device.publish("ea/v1/dev/status", b"online", retain=True)
    device.publish("ea/v1/dev/status", b"busy", retain=True)  # the last one is kept
    seen: list[Message] = []
    assert monitor.subscribe("ea/v1/+/status", seen.append)
    assert seen == [Message("ea/v1/dev/status", b"busy", 1, retain=True)]
    device.publish("ea/v1/dev/status", b"", retain=True)
    assert broker.retained("ea/v1/dev/status") is None
    late: list[Message] = []
    assert broker.client("late").subscribe("ea/#", late.append) is False  # not connected
    assert late == []


def test_publishing_while_offline_is_sent_on_connect():
    broker = MemoryBroker()
    receiver = broker.client("r")
    receiver.connect()
    seen: list[Message] = []
    receiver.subscribe("t", seen.append)
    sender = broker.client("s")
    info = sender.publish("t", b"queued")
    assert not info.is_published() and seen == []
    sender.connect()
    assert info.is_published()
    assert [m.payload for m in seen] == [b"queued"]


def test_a_lost_connection_publishes_the_last_will_and_notifies_listeners():
    broker = MemoryBroker()
    watcher = broker.client("w")
    watcher.connect()
    wills: list[bytes] = []
    watcher.subscribe("ea/v1/+/status", lambda m: wills.append(m.payload))
    device = broker.client("dev", will=LastWill("ea/v1/dev/status", b"offline"))
    changes: list[bool] = []
    device.on_connection_change(changes.append)
    device.connect()
    device.drop()
    assert wills == [b"offline"] and broker.retained("ea/v1/dev/status") == b"offline"
    device.reconnect()
    assert changes == [True, False, True]
    device.close()  # a clean disconnect: no will
    assert wills == [b"offline"]


def test_subscriptions_survive_a_reconnect_and_a_raising_handler_is_contained():
    broker = MemoryBroker()
    client = broker.client("c")
    client.connect()
    seen: list[bytes] = []

    def explode(_m: Message) -> None:
        raise RuntimeError("garbage payload")

    client.subscribe("boom", explode)
    client.subscribe("ok", lambda m: seen.append(m.payload))
    client.drop()
    client.reconnect()
    client.publish("boom", b"1")
    client.publish("ok", b"2")
    client.unsubscribe("ok")
    client.publish("ok", b"3")
    assert seen == [b"2"]


def test_the_same_client_id_connecting_again_takes_over():
    broker = MemoryBroker()
    first = broker.client("dev")
    changes: list[bool] = []
    first.on_connection_change(changes.append)
    first.connect()
    broker.client("dev").connect()
    assert not first.connected and changes == [True, False]
