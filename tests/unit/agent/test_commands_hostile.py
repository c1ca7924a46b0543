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
