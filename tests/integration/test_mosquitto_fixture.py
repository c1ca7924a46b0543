"""The broker fixture itself: a real round trip through a private Mosquitto."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from tests.fixtures.mosquitto import Broker


def test_private_broker_delivers_a_qos1_message(mosquitto: Broker) -> None:
    received = threading.Event()
    payloads: list[bytes] = []

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        payloads.append(message.payload)
        received.set()

    subscribed = threading.Event()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sub")
    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *_args: subscribed.set()
    subscriber.connect(mosquitto.host, mosquitto.port)
    subscriber.subscribe("ea/v1/test/telemetry", qos=1)
    subscriber.loop_start()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub")
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    try:
        assert subscribed.wait(10), "no SUBACK from the broker"
        publisher.publish("ea/v1/test/telemetry", b"hello", qos=1).wait_for_publish(5)
        assert received.wait(10), "no message came back through the broker"
        assert payloads == [b"hello"]
    finally:
        publisher.disconnect()  # first: the network loop then ends at once
        subscriber.disconnect()
        publisher.loop_stop()
        subscriber.loop_stop()
