"""Staged fleet rollouts: signed wave plans, health gates, automatic halt and rollback.

Operator side: :class:`RolloutController` (``controller.py``) with its pure gate rules
(``gates.py``) and persisted state (``state.py``), fed by :class:`MonitorHealth`. Device side:
:func:`fetch_rollout`, :func:`release_for_device`, :func:`plan_for_device` and
:class:`RolloutSource` (``device.py``). Both sides share the signed document (``document.py``)
and the stable wave assignment (``waves.py``). See docs/rollouts.md.
"""

from __future__ import annotations

from edge_agent.fleet.rollout.controller import RolloutController
from edge_agent.fleet.rollout.device import (
    DevicePlan,
    RolloutSource,
    fetch_rollout,
    plan_for_device,
    release_for_device,
)
from edge_agent.fleet.rollout.document import (
    RolloutDocument,
    publish_rollout,
    published_rollout,
    rollout_target_path,
)
from edge_agent.fleet.rollout.gates import (
    Decision,
    GateThresholds,
    GateVerdict,
    WaveReading,
    decide_step,
    evaluate_gates,
)
from edge_agent.fleet.rollout.waves import bucket, partition, wave_of

__all__ = [
    "Decision",
    "DevicePlan",
    "GateThresholds",
    "GateVerdict",
    "RolloutController",
    "RolloutDocument",
    "RolloutSource",
    "WaveReading",
    "bucket",
    "decide_step",
    "evaluate_gates",
    "fetch_rollout",
    "partition",
    "plan_for_device",
    "publish_rollout",
    "published_rollout",
    "release_for_device",
    "rollout_target_path",
    "wave_of",
]
