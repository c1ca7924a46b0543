"""Commands on the device's cmd topic: parsed purely, refused with a reason, never raising."""

from __future__ import annotations

import pytest

from edge_agent.agent.link import Command, parse_command


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"command": "status"}', Command(name="status")),
        (b'{"command": "reload"}', Command(name="reload")),
        (
            b'{"command": "sample-now", "count": 5, "model": "digits"}',
            Command(name="sample-now", count=5, model="digits"),
        ),
        (b'{"command": "sample-now", "count": 1e9}', Command(name="sample-now", count=1000)),
        (
            b'{"command": "sample-now", "count": -3, "model": 7}',
            Command(name="sample-now", count=1),
        ),
    ],
)
def test_commands_that_parse(payload, expected):
    assert parse_command(payload) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe garbage", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"command": "install", "url": "http://evil"}', "unknown command 'install'"),
        (b'{"command": "sample-now", "count": "many"}', "is not a number"),
        (b"", "not JSON"),
    ],
)
def test_garbage_and_unknown_commands_are_refused_with_a_reason(payload, reason):
    refused = parse_command(payload)
    assert isinstance(refused, str) and reason in refused
