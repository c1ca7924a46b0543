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

    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sub")
    subscriber.on_message = on_message
    subscriber.connect(mosquitto.host, mosquitto.port)
    subscriber.subscribe("ea/v1/test/telemetry", qos=1)
    subscriber.loop_start()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub")
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    try:
        for _ in range(50):  # the subscription is asynchronous: publish until it lands
            publisher.publish("ea/v1/test/telemetry", b"hello", qos=1).wait_for_publish(2)
            if received.wait(0.1):
                break
        assert received.is_set(), "no message came back through the broker"
        assert payloads[0] == b"hello"
    finally:
        publisher.loop_stop()
        subscriber.loop_stop()
        publisher.disconnect()
        subscriber.disconnect()
