"""Hostile payloads on the agent's command topic: ``parse_command`` answers, never raises.

Anyone allowed to publish on ``ea/v1/<device>/cmd`` reaches ``parse_command`` on paho's thread
(``Agent._on_command``); an exception there would be swallowed by paho's callback guard at
best. The wire's ``Command.decode`` is property-tested in ``tests/unit/wire``; this checks the
agent's side: a ``Command`` whose fields are usable, or a short reason that is safe to log.
"""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.agent.link import COMMANDS, MAX_SAMPLES_PER_COMMAND, Command, parse_command
from tests.unit.wire.strategies import encode, json_value

RELAXED = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


def check(payload: bytes) -> None:
    started = time.perf_counter()
    command = parse_command(payload)
    assert time.perf_counter() - started < 2.0
    if isinstance(command, str):
        assert len(command) < 400  # one log line, however large the payload
        command.encode("utf-8")  # no lone surrogate reaches the log
    else:
        assert isinstance(command, Command) and command.name in COMMANDS
        assert 1 <= command.count <= MAX_SAMPLES_PER_COMMAND
        assert command.model is None or ("\x00" not in command.model and len(command.model) <= 128)


@RELAXED
@given(data=st.binary(max_size=300))
def test_random_command_bytes_are_refused_with_a_reason(data: bytes) -> None:
    check(data)


@RELAXED
@given(name=st.sampled_from([*COMMANDS, "nope", ""]), value=json_value, field=st.integers(0, 3))
def test_a_command_with_a_hostile_field_is_usable_or_refused(
    name: str, value: Any, field: int
) -> None:
    document: dict[str, Any] = {"command": name, "count": 3, "model": "digits", "v": 1}
    document[("command", "count", "model", "v")[field]] = value
    check(encode(document))


def test_known_hostile_commands() -> None:
    for payload in (
        b'{"command": "sample-now", "count": 1e999}',
        b'{"command": "sample-now", "count": ' + b"9" * 5000 + b"}",
        b'{"command": ["status"]}',
        b'{"command": "sample-now", "model": "\\ud800\\u0000"}',
        b"[" * 100_000,
        json.dumps({"command": "x" * 100_000}).encode(),
    ):
        check(payload)


def test_a_flood_of_bad_commands_writes_one_log_line_a_minute(caplog) -> None:
    """Regression (issue 12, found by the soak): the agent logged a warning for every refused
    command, so whoever may publish on its ``cmd`` topic could fill its log at the broker's
    rate (600 lines in the 30-minute soak from one message every 6 s)."""
    import logging

    from edge_agent.agent.link import RefusalLog

    now = [0.0]
    refusals = RefusalLog(every_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="edge_agent.agent.link"):
        for i in range(10_000):  # 10,000 garbage commands in 100 s
            now[0] = i / 100
            reason = parse_command(b"\xff garbage")
            assert isinstance(reason, str)
            refusals.refused(reason)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("command ignored: not JSON")
    assert "and 5999 more refused since the last line" in lines[1]  # held from 0.01 to 59.99 s
