"""The whole agent daemon across a flapping, then silent, link to its broker.

``test_link.py`` proves telemetry recovery with an outbox and its publisher alone; here the
real process (``edge-agent run --config``) is what crosses the bad link, so the parts it wires
together are on trial too: its MQTT client's reconnects and silence watch, the retained status
it publishes on every reconnect (its periodic status is set to an hour, so only the reconnect
can put it back), its durable outbox and publisher, and its HTTP API, which must not care.
One scenario (``tests/fixtures/agent_link_world.py``) runs in a private network namespace:
the link goes down three times for 1.5 s (every connection reset, new ones refused), then
silent (no FIN, no RST) until the broker gives up on the device, then silent again while the
agent is killed (kill -9) with records sent into the silence and restarted; a monitor on the
broker's own listener watches the device's status and records.

Needs root and iproute2 (``ip``, ``tc``): in CI a missing tool fails the test (a skip there is
a failure, tests/fixtures/ci_skips.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.link import PrivateNetRun, missing_tools
from tests.fixtures.wait import wait_for

pytestmark = pytest.mark.mqtt


@pytest.fixture(scope="module")
def result() -> Iterator[dict[str, Any]]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"a shaped link needs {missing}")
    run = PrivateNetRun("tests.fixtures.agent_link_world")
    try:
        yield run.result(timeout_s=150)
    finally:
        run.stop()


def test_the_agents_retained_status_follows_every_outage_and_comes_back_online(result):
    """Each cut shows the last will at once; a blackhole shows it once the broker gives up.

    After each outage the agent's own reconnect publishes ``online`` again (no periodic status
    could have done it within the scenario's hour-long status period).
    """
    assert result["cuts"] == 3, result
    for flap in result["flaps"]:
        assert flap["offline_after_s"] is not None, f"no last will after a cut: {result}"
        assert flap["online_after_up_s"] is not None, f"status not back after a cut: {result}"
        assert flap["state_after"] == "online", result
    hole = result["blackhole"]
    keepalive = result["keepalive_s"]
    assert hole["offline_after_s"] is not None, f"the broker never gave up on the device: {result}"
    # the broker's keepalive gave up (1.5 periods after the device's last packet, which may
    # precede the silence by a report period; 7-11 s measured), not a reset (at once); how
    # late it may be under load is bounded only by the scenario's wait (6 periods)
    assert hole["offline_after_s"] >= keepalive, result
    assert hole["online_after_lifted_s"] is not None, f"status not back after silence: {result}"
    assert hole["state_after"] == "online", result
    assert result["silence_noticed_by_agent"], "the agent never noticed the silent link"
    assert result["crash_in_silence"]["state_after"] == "online", result
    assert result["recovered_state"] == "online", result
    assert result["agent_exit"] == 0, result


def test_every_record_the_agent_queued_across_flaps_and_a_blackhole_reaches_the_monitor(result):
    """Sequences 1..N that the agent's outbox handed out all arrive; the outbox ends empty.

    Over a flap or a healed blackhole paho's session would resend what it held in memory
    anyway; the records published into a silent link before a kill -9 are the ones that only
    the outbox on disk keeps (acknowledging a record when it is published, not at its PUBACK,
    loses exactly those: checked by hand).
    """
    crash = result["crash_in_silence"]
    assert crash["sent_into_silence"] >= 3, crash
    assert crash["lost_of_those"] == 0, crash
    telemetry = result["telemetry"]
    assert telemetry["lost"] == 0, telemetry
    assert telemetry["queued"] == telemetry["received"] > 0, telemetry
    assert telemetry["queued_during_outages"] >= 5, telemetry  # the outages were covered
    assert telemetry["left_in_outbox"] == 0, telemetry
    assert telemetry["dropped"] == 0, telemetry
    assert telemetry["foreign_instances"] == [], telemetry
    assert telemetry["undecodable"] == [], telemetry


def test_the_agent_serves_inferences_while_its_broker_link_is_down(result):
    """The link is not the serving path: no request failed or stalled during any outage."""
    inferences = result["inferences"]
    assert inferences["failed"] == 0, inferences
    assert inferences["ok_during_outages"] >= 20, inferences
    assert inferences["max_s"] < 5.0, inferences


def test_a_stop_at_the_moment_the_link_drops_still_closes_the_client_and_the_models(
    mosquitto, models_dir, tmp_path, caplog
):
    """Regression: the stop's last ``offline`` status went to paho just as the link dropped.

    paho lets go of its socket a moment before its loss callback clears ``connected``; a
    publish in between returns "no connection", and ``wait_for_publish`` on it raised
    RuntimeError out of ``Agent.stop``: the client and the models were never closed and the
    agent exited with a traceback. That moment is held open here: paho's network thread is
    stopped and its socket closed under it, so the loss is not heard.
    """
    from edge_agent.agent.process import Agent
    from edge_agent.config import AgentConfig

    config = AgentConfig.model_validate(
        {
            "device_id": "drop-1",
            "device": "x86-generic",
            "store_dir": str(tmp_path / "state"),
            "models": [{"name": "digits", "path": str(models_dir / "digits/digits_fp32.onnx")}],
            "broker": {"url": mosquitto.url, "keepalive_s": 5},
            "api": {"listen": "127.0.0.1:0"},
        }
    )
    caplog.set_level(logging.INFO, logger="edge_agent.agent.process")
    agent = Agent(config)
    agent.start()
    try:
        assert agent.mqtt is not None
        mqtt = agent.mqtt
        wait_for(lambda: mqtt.connected, 20, "the agent's MQTT connection")
        paho = mqtt._paho
        paho.loop_stop()
        paho._sock_close()
        assert mqtt.connected  # the loss is not heard yet
    finally:
        agent.stop()  # raised RuntimeError("Message publish failed: ...") before the fix
    assert not mqtt.connected
    assert "agent drop-1 stopped" in caplog.text  # its last step: the models closed too
