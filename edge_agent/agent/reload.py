"""What a config reload (SIGHUP, or the `reload` command) changes: a pure decision.

Every top-level section of the agent config is classified here, once: either a running agent
applies a change of it in place (**live**), or the change waits for the next start
(**restart**), and the agent says so in its log and in its status document instead of
ignoring it. A unit test fails when the schema grows a section that is not classified.

Live today: ``models`` (added, removed, or swapped through the health gates) and ``pipelines``
(a removed or changed pipeline stops, a new or changed one starts). Everything else is built
once at start-up and held by long-lived parts (sockets, the MQTT session and its topics, the
outbox and drift workers, loaded runtimes, the capture hooks on the models).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from edge_agent.config import AgentConfig, ModelEntry, PipelineSettings

Applied = Literal["live", "restart"]

SECTIONS: dict[str, tuple[Applied, str]] = {
    "device_id": ("restart", "the device's identity: MQTT client id, topics and last will"),
    "device": ("restart", "the device config: runtime defaults and sensor paths"),
    "runtime": ("restart", "runtime settings apply when a model is loaded"),
    "store_dir": ("restart", "the model store, trust metadata and outbox are open files"),
    "models": ("live", "models are added, removed or swapped through the health gates"),
    "broker": ("restart", "the MQTT connection and session"),
    "api": ("restart", "the listening socket of the local API"),
    "telemetry": ("restart", "the outbox, latency sketches and drift workers"),
    "serving": ("restart", "isolation, swap gates, the watchdog and the status timer"),
    "pipelines": ("live", "changed pipelines restart, removed ones stop, new ones start"),
    "capture": ("restart", "the sample store and the capture hooks on the models"),
    "registry": ("restart", "the TUF client and its trust anchor"),
    "link": ("restart", "the link budget shared by the download and upload threads"),
}
"""Each top-level config section: applied live or at the next restart, and why."""

LIVE = tuple(name for name, (applied, _) in SECTIONS.items() if applied == "live")
RESTART_ONLY = tuple(name for name, (applied, _) in SECTIONS.items() if applied == "restart")


@dataclass(frozen=True)
class ReloadPlan:
    """What to change in the running agent, and what has to wait for a restart.

    ``running`` is the config the agent runs after applying the plan: the fresh file's live
    sections over the current restart-only ones, so the next reload compares against what runs.
    """

    running: AgentConfig
    add: list[ModelEntry] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    swap: list[ModelEntry] = field(default_factory=list)
    stop_pipelines: list[str] = field(default_factory=list)
    start_pipelines: list[PipelineSettings] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)


def restart_reason(section: str) -> str:
    """Why a change of ``section`` waits for the next restart (for the log)."""
    return SECTIONS[section][1]


def plan_reload(
    running: Mapping[str, ModelEntry],
    current: AgentConfig,
    fresh: AgentConfig,
    delivered: Collection[str] = (),
) -> ReloadPlan:
    """Compare what runs with what the fresh config asks for.

    ``running`` are the models served from local files; ``delivered`` the names the registry
    delivers, which a reload never removes (the config's ``registry.models`` owns them).
    ``needs_restart`` names every restart-only section in which ``fresh`` differs from
    ``current`` (the config the agent started with), sorted.
    """
    wanted: Sequence[ModelEntry] = [entry for entry in fresh.models if entry.serve]
    wanted_names = {entry.name for entry in wanted}
    stop, start = _pipeline_changes(current.pipelines, fresh.pipelines)
    plan = ReloadPlan(
        running=current.model_copy(update={name: getattr(fresh, name) for name in LIVE}),
        remove=[name for name in running if name not in wanted_names and name not in delivered],
        stop_pipelines=stop,
        start_pipelines=start,
        needs_restart=sorted(
            name
            for name in AgentConfig.model_fields
            if SECTIONS[name][0] == "restart" and getattr(fresh, name) != getattr(current, name)
        ),
    )
    for entry in wanted:
        if entry.name not in running:
            plan.add.append(entry)
        elif entry != running[entry.name]:  # a new file or a new drift profile
            plan.swap.append(entry)
    return plan


def _pipeline_changes(
    current: Sequence[PipelineSettings], fresh: Sequence[PipelineSettings]
) -> tuple[list[str], list[PipelineSettings]]:
    """Pipelines to stop (removed or changed) and to start (new or changed), by name."""
    before = {pipeline.name: pipeline for pipeline in current}
    after = {pipeline.name: pipeline for pipeline in fresh}
    stop = [name for name, old in before.items() if after.get(name) != old]
    start = [new for name, new in after.items() if before.get(name) != new]
    return stop, start
