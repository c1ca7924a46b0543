"""Staged fleet rollouts, the operator's half: signed wave plans, health gates, rollback.

:class:`RolloutController` (``controller.py``) with its pure gate rules (``gates.py``) and
persisted state (``state.py``), fed by a :class:`HealthSource` (declared in ``gates.py``; the
monitor's database answers through ``health.MonitorHealth``, imported only by whoever wires a
monitor in, so this package loads without the monitor), publishes the signed document
(``publish.py``). The document itself and the stable wave assignment are shared with devices
and live on the device side (:mod:`edge_agent.delivery.rollout_document`,
:mod:`edge_agent.delivery.waves`); the device's following code is
:mod:`edge_agent.delivery.following`. See docs/rollouts.md.
"""

from __future__ import annotations

from edge_agent.delivery.waves import partition
from edge_agent.fleet.rollout.controller import RolloutController
from edge_agent.fleet.rollout.gates import (
    Decision,
    GateThresholds,
    GateVerdict,
    HealthSource,
    WaveReading,
    decide_step,
    evaluate_gates,
)
from edge_agent.fleet.rollout.publish import publish_rollout, published_rollout

__all__ = [
    "Decision",
    "GateThresholds",
    "GateVerdict",
    "HealthSource",
    "RolloutController",
    "WaveReading",
    "decide_step",
    "evaluate_gates",
    "partition",
    "publish_rollout",
    "published_rollout",
]
