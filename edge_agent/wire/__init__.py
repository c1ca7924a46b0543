"""The wire contract: every document that crosses MQTT between a device and the operator side.

One typed class per document, each with ``encode`` / ``decode`` and a schema version ``v``,
used by whoever sends it (the agent, the simulator, the test fakes) and whoever receives it
(the agent's command handler, the monitor). Decoding sanitises text and numbers in one place
(:mod:`edge_agent.wire._clean`) and raises nothing but :class:`~edge_agent.errors.WireError`.

- ``status``: :class:`Status` and its last will (:mod:`~edge_agent.wire.status`);
- ``telemetry``: an :class:`Envelope` of a :class:`TelemetryReport` or a
  :class:`PowerPolicyEvent` (:mod:`~edge_agent.wire.telemetry`);
- ``drift``: an :class:`Envelope` of a :class:`DriftReport` or a :class:`DriftAlarmEvent`
  (:mod:`~edge_agent.wire.drift`);
- ``rollout``: a :class:`Transition` or a :class:`SwapEvent` (:mod:`~edge_agent.wire.transitions`);
- ``cmd``: a :class:`Command` (:mod:`~edge_agent.wire.commands`);
- ``samples``: a :class:`SampleChunkHeader` line, then bytes (:mod:`~edge_agent.wire.chunks`);
- ``registry/notify``: a :class:`RegistryNotice` (:mod:`~edge_agent.wire.notices`); the
  registry's chunk requests and frames are ``edge_agent.trust.protocol`` (binary frames).

The states those documents carry are enums in :mod:`edge_agent.wire.states`. Device side and
operator side both import this package; it imports neither.
"""

from __future__ import annotations

from edge_agent.errors import WireError
from edge_agent.wire._document import SCHEMA_VERSION, Document
from edge_agent.wire.chunks import SampleChunkHeader, decode_sample_chunk, encode_sample_chunk
from edge_agent.wire.commands import Command
from edge_agent.wire.drift import DriftAlarmEvent, DriftReport, decode_drift
from edge_agent.wire.notices import RegistryNotice
from edge_agent.wire.states import (
    FAILED_STATES,
    GOOD_STATES,
    ROLLOUT_STATES,
    DeviceState,
    SwapState,
    UpdateState,
)
from edge_agent.wire.status import ModelStatus, Status
from edge_agent.wire.telemetry import Envelope, PowerPolicyEvent, TelemetryReport, decode_telemetry
from edge_agent.wire.transitions import SwapEvent, Transition, decode_rollout

__all__ = [
    "FAILED_STATES",
    "GOOD_STATES",
    "ROLLOUT_STATES",
    "SCHEMA_VERSION",
    "Command",
    "DeviceState",
    "Document",
    "DriftAlarmEvent",
    "DriftReport",
    "Envelope",
    "ModelStatus",
    "PowerPolicyEvent",
    "RegistryNotice",
    "SampleChunkHeader",
    "Status",
    "SwapEvent",
    "SwapState",
    "TelemetryReport",
    "Transition",
    "UpdateState",
    "WireError",
    "decode_drift",
    "decode_rollout",
    "decode_sample_chunk",
    "decode_telemetry",
    "encode_sample_chunk",
]
