"""The in-memory transport's topic matching is the real broker's: every case, through Mosquitto.

One raw paho client per filter (so neither paho's nor our own matching is in the way), each
also subscribed to a sentinel topic of its own; the sentinels are published after every case
topic, and a QoS 1 stream from one publisher arrives in order, so once a client has its
sentinel it has everything the broker meant it to have. No sleeping.
"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest

from edge_agent.transport.memory import topic_matches
from tests.fixtures.mosquitto import Broker
from tests.fixtures.mqtt_topics import FILTERS, MATCH_CASES, TOPICS

pytestmark = pytest.mark.mqtt


class Receiver:
    def __init__(self, broker: Broker, index: int, topic_filter: str) -> None:
        self.sentinel = f"sentinel/{index}"
        self.topics: set[str] = set()
        self.done = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"filter-{index}")
        self.client.on_message = self.on_message
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe([(topic_filter, 1), (self.sentinel, 1)])

    def on_message(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.sentinel:
            self.done.set()
        elif not message.topic.startswith("sentinel/"):
            self.topics.add(message.topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_match_table_is_what_mosquitto_delivers(mosquitto: Broker) -> None:
    receivers = {f: Receiver(mosquitto, i, f) for i, f in enumerate(FILTERS)}
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="publisher")
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    try:
        for receiver in receivers.values():
            assert receiver.subscribed.wait(10)
        infos = [publisher.publish(topic, b"x", qos=1) for topic in TOPICS]
        infos += [publisher.publish(r.sentinel, b"end", qos=1) for r in receivers.values()]
        for info in infos:
            info.wait_for_publish(10)
        for receiver in receivers.values():
            assert receiver.done.wait(10), f"no sentinel for {receiver.sentinel}"
        broker_says = [(f, t, t in receivers[f].topics) for f, t, _expected in MATCH_CASES]
        assert broker_says == MATCH_CASES
        # and the fake agrees on every pair of filter and topic, not only the listed ones
        for topic_filter, receiver in receivers.items():
            assert {t for t in TOPICS if topic_matches(topic_filter, t)} == receiver.topics
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        for receiver in receivers.values():
            receiver.close()
