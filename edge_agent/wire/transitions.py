"""Rollout events on ``ea/v1/<device>/rollout``: update transitions and swap events.

Two producers share the topic. The update state machine (``edge_agent.delivery.update``)
publishes a :class:`Transition` per state change (``timestamp``, integer release); the hot-swap
controller (``edge_agent.serving.swap``) publishes a :class:`SwapEvent` (``time``, version text,
shadow ``evidence``). :func:`decode_rollout` tells them apart for the monitor.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from edge_agent.errors import WireError
from edge_agent.wire._clean import JsonObject, Name, Number, Text, loads_object, number, text
from edge_agent.wire._document import Document
from edge_agent.wire.states import ROLLOUT_STATES, SwapState, UpdateState


def _release(value: Any) -> int | None:
    result = number(value, 0, 2**62)
    return None if result is None or result != int(result) else int(result)


def _stamp(value: Any) -> float:
    result = number(value)
    return 0.0 if result is None else result


class Transition(Document):
    """One state change of a model update on a device."""

    WHAT = "update transition"

    device: Annotated[str, BeforeValidator(lambda value: text(value, 128) or "")] = ""
    model: Annotated[str, BeforeValidator(lambda value: text(value, 128) or "")]
    version: Annotated[int | None, BeforeValidator(_release)] = None
    """The signed release number (None before it is known)."""
    state: UpdateState
    reason: Annotated[str, BeforeValidator(lambda value: text(value) or "")] = ""
    timestamp: Annotated[float, BeforeValidator(_stamp)]


class SwapEvent(Document):
    """A hot-swap step: shadow check started, candidate rejected or active, rollback, watch."""

    WHAT = "swap event"

    model: Name = None
    version: Name = None
    state: SwapState
    reason: Text = None
    time: Number = None
    evidence: JsonObject = None


def decode_rollout(payload: bytes | bytearray | memoryview | str) -> Transition | SwapEvent:
    """The rollout event in ``payload``; WireError if it is neither kind."""
    document = loads_object(payload, "rollout event")
    state = document.get("state")
    if not isinstance(state, str) or state not in ROLLOUT_STATES:
        raise WireError("wrong_shape", f"rollout state {str(state)[:40]!r} is unknown")
    if "timestamp" in document and state in {s.value for s in UpdateState}:
        return Transition.from_object(document, cleaned=True)
    if state not in {s.value for s in SwapState}:  # an update state without its timestamp
        stamped = {**document, "timestamp": document.get("time")}
        return Transition.from_object(stamped, cleaned=True)
    return SwapEvent.from_object(document, cleaned=True)
