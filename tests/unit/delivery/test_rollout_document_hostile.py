"""Hostile rollout documents: ``from_bytes`` raises only UpdateError, and what it accepts the
device can plan with.

A rollout document is signed by the ``rollouts`` role, whose key may live online on the
controller; a stolen key must not be able to crash the device's update loop with a document
whose fields have the wrong types (the signature only says who wrote it).
"""

from __future__ import annotations

import json
import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.delivery.following import plan_for_device
from edge_agent.delivery.rollout_document import MAX_DOCUMENT_BYTES, RolloutDocument
from edge_agent.errors import UpdateError
from tests.unit.wire.strategies import encode, hostile_text, json_value

NOW = 1_800_000_000.0
REAL: dict[str, Any] = json.loads(
    RolloutDocument(
        id="r-1",
        group="lab",
        model="digits",
        release=3,
        previous=2,
        waves=(5.0, 25.0, 100.0),
        salt="lab",
        opened=(NOW - 60,),
        reason="wave 1 of 3 opened",
        issued_at=NOW - 60,
    ).to_bytes()
)


def decode_and_plan(data: bytes) -> None:
    """Refused with UpdateError, or a document every device decision works on."""
    started = time.perf_counter()
    try:
        doc = RolloutDocument.from_bytes(data)
    except UpdateError as exc:
        assert str(exc)
    else:
        for device in ("dev-1", "cam-7"):
            for active in (None, 1, doc.release):
                plan = plan_for_device(doc, device, NOW, active, rejected={2})
                assert plan.action in ("stay", "install", "roll_back")
        assert RolloutDocument.from_bytes(doc.to_bytes()) == doc
    assert time.perf_counter() - started < 2.0


RELAXED = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


@RELAXED
@given(data=st.binary(max_size=300))
def test_random_bytes_are_refused(data: bytes) -> None:
    decode_and_plan(data)


@RELAXED
@given(value=json_value)
def test_random_json_is_refused_or_usable(value: Any) -> None:
    decode_and_plan(encode(value))


WRONG = st.one_of(
    json_value,
    hostile_text,
    st.sampled_from([True, None, 10**400, -(10**400), [10**400], [1e999], ["x"], {}, [], 0]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(sorted(REAL)), new=WRONG)
def test_a_real_document_with_one_hostile_field_is_refused_or_usable(field: str, new: Any) -> None:
    decode_and_plan(encode({**REAL, field: new}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("waves", [10**400]),
        ("opened", [10**400]),
        ("salt", None),
        ("salt", "\ud800"),
        ("release", True),
        ("issued_at", "yesterday"),
        ("reason", {"a": 1}),
        ("id", "r\x00"),
        ("opened", [float("nan")]),
    ],
)
def test_a_document_with_wrong_field_types_is_refused(field: str, value: Any) -> None:
    """Regression (issue 12): 10**400 in ``waves`` or ``opened`` raised OverflowError out of
    ``from_bytes``; a null ``salt``, ``true`` as the release, a text ``issued_at``, an object
    as the reason, NUL in the id and NaN opening times were accepted (a null salt, or one with
    a lone surrogate, then failed in the device's wave hashing, inside its update loop)."""
    with pytest.raises(UpdateError):
        RolloutDocument.from_bytes(encode({**REAL, field: value}))


def test_the_real_document_decodes() -> None:
    assert RolloutDocument.from_bytes(encode(REAL)).release == 3


def test_a_document_at_the_size_limit_decodes_in_bounded_memory_and_time() -> None:
    huge = encode({**REAL, "reason": "x" * (MAX_DOCUMENT_BYTES - 400)})
    deep = b"[" * (MAX_DOCUMENT_BYTES // 2) + b"]" * (MAX_DOCUMENT_BYTES // 2)
    for data in (huge, deep, b"0" * (MAX_DOCUMENT_BYTES + 1)):
        tracemalloc.start()
        started = time.perf_counter()
        try:
            decode_and_plan(data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 20 * MAX_DOCUMENT_BYTES
        assert time.perf_counter() - started < 5
