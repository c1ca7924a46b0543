"""Waiting for a PUBACK on a message paho never sent is an answer (False), not an exception."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from edge_agent.transport.client import MqttClient, wait_acknowledged


def unsent() -> mqtt.MQTTMessageInfo:
    """What paho's publish returns without a socket: a real client that never connected."""
    client = MqttClient("mqtt://127.0.0.1:1", "never-connected")
    try:
        return client.publish("ea/v1/dev-1/status", b"{}", qos=1, retain=True)
    finally:
        client.close()


def test_a_message_paho_never_sent_is_not_acknowledged_rather_than_an_error():
    """paho raises for it; raised out of the agent's stop, it ended the stop half-way
    (tests/integration/test_agent_link.py::
    test_a_stop_at_the_moment_the_link_drops_still_closes_the_client_and_the_models)."""
    info = unsent()
    assert info.rc == mqtt.MQTT_ERR_NO_CONN
    with pytest.raises(RuntimeError):
        info.wait_for_publish(0.01)  # what paho does, and why the wrapper exists
    assert wait_acknowledged(info, 0.01) is False


def test_an_acknowledged_message_is_acknowledged_and_an_unanswered_one_times_out():
    acked = mqtt.MQTTMessageInfo(1)
    acked.rc = mqtt.MQTT_ERR_SUCCESS
    acked._set_as_published()  # paho's own call when the PUBACK arrives
    assert wait_acknowledged(acked, 0.01) is True
    pending = mqtt.MQTTMessageInfo(2)
    pending.rc = mqtt.MQTT_ERR_SUCCESS
    assert wait_acknowledged(pending, 0.05) is False
