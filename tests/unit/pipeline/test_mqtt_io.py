"""The pipeline's MQTT source and result sink, through the in-memory transport (no broker).

The end-to-end path through Mosquitto is tests/integration/test_pipeline_folder_mqtt.py; here
only the logic: what is decoded, what is refused and counted, what is published where.
"""

from __future__ import annotations

import io

import numpy as np

from edge_agent.config import MqttSink, MqttSource
from edge_agent.pipeline.mqtt_source import MqttTensorSource
from edge_agent.pipeline.sinks import MqttResultSink
from edge_agent.transport import topics
from edge_agent.transport.client import Message
from edge_agent.transport.memory import MemoryBroker


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_the_source_queues_decoded_tensors_and_counts_what_it_refuses():
    broker = MemoryBroker()
    agent, sensor = broker.client("agent"), broker.client("sensor")
    agent.connect()
    sensor.connect()
    settings = MqttSource.model_validate({"type": "mqtt", "topic": "sensors/+/frames"})
    source = MqttTensorSource("tensors", settings, agent, queue_size=8)  # type: ignore[arg-type]
    source.start()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    sensor.publish("sensors/cam/frames", b"\xff\x00 garbage")
    sensor.publish("sensors/cam/frames", npy(x))
    sensor.publish("sensors/cam/other", npy(x))  # not the source's topic
    frame = source.read(0)
    assert frame is not None and frame.meta == {"topic": "sensors/cam/frames"}
    assert isinstance(frame.data, dict)
    (decoded,) = frame.data.values()
    np.testing.assert_array_equal(decoded, x)
    assert frame.frame_id == "sensors/cam/frames#1"
    assert source.read(0) is None
    assert (source.received, source.rejected) == (1, 1)
    assert "sensors/cam/frames" in source.last_error


def test_the_sink_publishes_every_nth_result_and_counts_what_it_drops_offline():
    broker = MemoryBroker()
    agent, app = broker.client("agent"), broker.client("app")
    app.connect()
    seen: list[Message] = []
    app.subscribe(topics.all_results("cam-1"), seen.append)
    settings = MqttSink.model_validate({"type": "mqtt", "every_n": 2, "retain": True})
    sink = MqttResultSink(agent, "cam-1", "digits", settings)  # type: ignore[arg-type]
    sink.write(b"r1")
    sink.write(b"r2")  # the 2nd, but offline: dropped, not queued
    agent.connect()
    for n in range(3, 7):
        sink.write(f"r{n}".encode())
    assert [m.payload for m in seen] == [b"r4", b"r6"]
    assert {m.topic for m in seen} == {topics.device_results("cam-1", "digits")}
    assert (sink.published, sink.dropped_offline) == (2, 1)
    assert broker.retained(topics.device_results("cam-1", "digits")) == b"r6"
