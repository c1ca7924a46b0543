"""A simulated fleet for scale and rollout tests: real MQTT and TUF, synthetic inference.

:class:`FleetSimulator` runs N light agents in one process (``fleet.py``); faults are set with
:class:`FaultSettings` (``faults.py``). See docs/rollouts.md for what is real and what is shared.
"""

from __future__ import annotations

from edge_agent.fleet.simulator.faults import FaultSettings
from edge_agent.fleet.simulator.fleet import FleetSimulator, SimulatorSettings

__all__ = ["FaultSettings", "FleetSimulator", "SimulatorSettings"]
