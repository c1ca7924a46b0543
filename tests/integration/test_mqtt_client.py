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


def collect(client: MqttClient, topic_filter: str) -> queue.Queue[Message]:
    box: queue.Queue[Message] = queue.Queue()
    client.subscribe(topic_filter, box.put)
    return box


def publish_until_received(
    sender: MqttClient, topic: str, box: queue.Queue[Message], payload: bytes
) -> Message:
    """Subscriptions are asynchronous: publish until the first copy comes back."""
    for _ in range(50):
        sender.publish(topic, payload, qos=1).wait_for_publish(2)
        try:
            return box.get(timeout=0.2)
        except queue.Empty:
            continue
    raise AssertionError(f"nothing arrived on {topic}")


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

        receiver.subscribe(topics.device_topic("cam-01", DeviceChannel.SAMPLES), explode)
        box = collect(receiver, topic)
        sender.publish(topics.device_topic("cam-01", DeviceChannel.SAMPLES), b"\xff\x00garbage")
        message = publish_until_received(sender, topic, box, b"refresh")
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
        publish_until_received(sender, topic, box, b"before")
        mosquitto.restart()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not (
            receiver.connected and sender.connected and False in events
        ):
            time.sleep(0.1)
        assert receiver.connected and sender.connected
        while not box.empty():  # copies of "before" from the retries above
            box.get_nowait()
        message = publish_until_received(sender, topic, box, b"after")
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
        doomed.connect()
        time.sleep(0.3)
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
        publish_until_received(operator, topic, box, b"hello")
        while not box.empty():
            box.get_nowait()
        device._paho.socket().close()  # the network drops
        time.sleep(0.2)
        # queued by the broker for the offline session, not lost
        operator.publish(topic, b"sample-now", qos=1).wait_for_publish(5)
        payloads = []
        deadline = time.monotonic() + 30
        while b"sample-now" not in payloads and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):  # late copies of "hello" may come first
                payloads.append(box.get(timeout=0.5).payload)
        assert b"sample-now" in payloads
        assert events.count(True) >= 2  # it reconnected and resumed the session
    device.close()
