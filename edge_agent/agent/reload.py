"""What a config reload changes: a pure decision over the running and the wanted models."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from edge_agent.config import AgentConfig, ModelEntry

RESTART_ONLY = ("api", "broker", "device", "registry", "store_dir")
"""Config sections a running agent cannot change in place (sockets, identity, trust)."""


@dataclass(frozen=True)
class ReloadPlan:
    """Models to add, to stop serving, and to replace with a new file (through the gates)."""

    add: list[ModelEntry] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    swap: list[ModelEntry] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)


def plan_reload(
    running: Mapping[str, ModelEntry],
    current: AgentConfig,
    fresh: AgentConfig,
    delivered: Collection[str] = (),
) -> ReloadPlan:
    """Compare what runs with what the fresh config asks for.

    ``running`` are the models served from local files; ``delivered`` the names the registry
    delivers, which a reload never removes (the config's ``registry.models`` owns them).
    """
    wanted: Sequence[ModelEntry] = fresh.models
    wanted_names = {entry.name for entry in wanted}
    plan = ReloadPlan(
        remove=[name for name in running if name not in wanted_names and name not in delivered],
        needs_restart=[key for key in RESTART_ONLY if getattr(fresh, key) != getattr(current, key)],
    )
    for entry in wanted:
        if entry.name not in running:
            plan.add.append(entry)
        elif entry.path != running[entry.name].path:
            plan.swap.append(entry)
    return plan
