"""The MQTT client wrapper against a real private Mosquitto."""

from __future__ import annotations

import contextlib
import queue
import time

import pytest

from edge_agent.errors import TransportError
from edge_agent.transport import topics
from edge_agent.transport.client import BrokerAddress, LastWill, Message, MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fixtures.mosquitto import Broker, free_port
from tests.fixtures.wait import wait_for


def collect(client: MqttClient, topic_filter: str) -> queue.Queue[Message]:
    """Subscribe a queue; when connected, the broker has acknowledged it on return."""
    box: queue.Queue[Message] = queue.Queue()
    assert client.subscribe(topic_filter, box.put) is client.connected
    return box


def publish_and_receive(
    sender: MqttClient, topic: str, box: queue.Queue[Message], payload: bytes
) -> Message:
    """One publish, one copy back: the subscription is acknowledged, so nothing is retried."""
    sender.publish(topic, payload, qos=1).wait_for_publish(5)
    try:
        return box.get(timeout=10)
    except queue.Empty:
        raise AssertionError(f"nothing arrived on {topic}") from None


def test_round_trip_and_a_raising_handler_does_not_break_the_connection(mosquitto: Broker):
    topic = topics.device_topic("cam-01", DeviceChannel.CMD)
    with (
        MqttClient(mosquitto.url, "receiver") as receiver,
        MqttClient(mosquitto.url, "sender") as sender,
    ):
        receiver.connect()
        sender.connect()

        def explode(_message: Message) -> None:
            raise ValueError("garbage payload")

        assert receiver.subscribe(topics.device_topic("cam-01", DeviceChannel.SAMPLES), explode)
        box = collect(receiver, topic)
        sender.publish(topics.device_topic("cam-01", DeviceChannel.SAMPLES), b"\xff\x00garbage")
        message = publish_and_receive(sender, topic, box, b"refresh")
        assert message.payload == b"refresh" and message.topic == topic
        assert receiver.connected


def test_subscriptions_survive_a_broker_restart(mosquitto: Broker):
    topic = topics.device_topic("cam-02", DeviceChannel.CMD)
    events: list[bool] = []
    with (
        MqttClient(mosquitto.url, "receiver") as receiver,
        MqttClient(mosquitto.url, "sender") as sender,
    ):
        receiver.on_connection_change(events.append)
        receiver.connect()
        sender.connect()
        box = collect(receiver, topic)
        publish_and_receive(sender, topic, box, b"before")
        mosquitto.restart()
        # "connected" again means the subscription is restored and acknowledged
        wait_for(lambda: False in events and receiver.connected and sender.connected, 40)
        assert box.empty()  # one publish, one copy: nothing left over from "before"
        message = publish_and_receive(sender, topic, box, b"after")
        assert message.payload == b"after"
        assert events[0] is True and False in events and events[-1] is True


def test_last_will_is_published_when_the_client_vanishes(mosquitto: Broker):
    status = topics.device_topic("cam-03", DeviceChannel.STATUS)
    with MqttClient(mosquitto.url, "watcher") as watcher:
        watcher.connect()
        box = collect(watcher, status)
        doomed = MqttClient(
            mosquitto.url, "cam-03", keepalive_s=5, will=LastWill(status, b'{"state": "offline"}')
        )
        doomed.connect()  # the broker holds the will once CONNACK came back
        doomed._paho.socket().close()  # vanish without a DISCONNECT, like a power cut
        message = box.get(timeout=20)
        doomed.close()
        assert message.payload == b'{"state": "offline"}'


def test_connecting_to_nothing_is_a_clear_transport_error():
    client = MqttClient(f"mqtt://127.0.0.1:{free_port()}", "lonely")
    with pytest.raises(TransportError, match="could not connect to the broker at mqtt://127"):
        client.connect(timeout_s=1.5)
    client.close()


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "broker:1883"])
def test_bad_broker_urls_are_rejected(url):
    with pytest.raises(TransportError, match="invalid broker URL"):
        BrokerAddress.from_url(url)


def test_default_ports():
    assert BrokerAddress.from_url("mqtt://b").port == 1883
    assert BrokerAddress.from_url("mqtts://b").port == 8883


def test_a_v5_session_resumes_and_delivers_what_was_queued_while_offline(mosquitto: Broker):
    topic = topics.device_topic("cam-04", DeviceChannel.CMD)
    device = MqttClient(mosquitto.url, "cam-04", protocol=5, session_expiry_s=60, keepalive_s=5)
    events: list[bool] = []
    device.on_connection_change(events.append)
    box = collect(device, topic)
    device.connect()
    with MqttClient(mosquitto.url, "operator") as operator:
        operator.connect()
        publish_and_receive(operator, topic, box, b"hello")
        device._paho.socket().close()  # the network drops
        # the broker holds the session offline once it has seen the connection go
        wait_for(lambda: "Client cam-04 closed its connection" in mosquitto.log(), 10)
        # queued by the broker for the offline session, not lost
        operator.publish(topic, b"sample-now", qos=1).wait_for_publish(5)
        payloads = []
        deadline = time.monotonic() + 30
        while b"sample-now" not in payloads and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):  # a copy of "hello" redelivered may come first
                payloads.append(box.get(timeout=0.5).payload)
        assert b"sample-now" in payloads
        # the resumed session delivers what it queued right after CONNACK, before "connected"
        # (which waits for the restored subscriptions' SUBACK) is announced
        wait_for(lambda: events.count(True) >= 2, 10, "the resumed connection")
        assert events.count(True) >= 2  # it reconnected and resumed the session
    device.close()


def test_a_message_published_right_after_subscribe_returns_is_delivered(mosquitto: Broker):
    """Regression: subscribe returned before the broker had the subscription, so tests slept."""
    with (
        MqttClient(mosquitto.url, "receiver") as receiver,
        MqttClient(mosquitto.url, "sender") as sender,
    ):
        receiver.connect()
        sender.connect()
        for i in range(20):  # each a fresh filter, each message sent once
            topic = f"ea/v1/cam-{i:02d}/cmd"
            box = collect(receiver, topic)
            assert publish_and_receive(sender, topic, box, b"now").payload == b"now"


def test_subscribing_before_connect_is_in_place_when_connect_returns(mosquitto: Broker):
    with (
        MqttClient(mosquitto.url, "receiver") as receiver,
        MqttClient(mosquitto.url, "sender") as sender,
    ):
        box = collect(receiver, "ea/v1/cam-05/cmd")  # not connected: False, sent on connect
        receiver.connect()
        sender.connect()
        assert publish_and_receive(sender, "ea/v1/cam-05/cmd", box, b"hi").payload == b"hi"


def test_subscribing_from_a_handler_does_not_block_the_network_thread(mosquitto: Broker):
    """A handler runs on paho's network thread, which must not wait for its own SUBACK."""
    with (
        MqttClient(mosquitto.url, "receiver") as receiver,
        MqttClient(mosquitto.url, "sender") as sender,
    ):
        receiver.connect()
        sender.connect()
        results: queue.Queue[bool] = queue.Queue()
        second: queue.Queue[Message] = queue.Queue()

        def subscribe_more(_message: Message) -> None:
            results.put(receiver.subscribe("ea/v1/cam-06/status", second.put, timeout_s=30))

        box = collect(receiver, "ea/v1/cam-06/cmd")
        assert receiver.subscribe("ea/v1/cam-06/cmd", subscribe_more)
        sender.publish("ea/v1/cam-06/cmd", b"go").wait_for_publish(5)
        assert results.get(timeout=5) is False  # not waited for: it could not be
        assert box.empty()  # the handler was replaced, not added
        # the receiver's own SUBACK comes after the SUBSCRIBE it sent from the handler
        assert receiver.subscribe("ea/v1/cam-06/sentinel", lambda _m: None)
        assert publish_and_receive(sender, "ea/v1/cam-06/status", second, b"up").payload == b"up"
