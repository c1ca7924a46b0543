"""The served models of one agent: loading, swap gates, delivered releases and rollbacks.

Every model the agent serves comes through here, whether from the config (at start-up or a
reload) or from the registry (a delivered release). A new version never replaces a working one
directly: it goes through its model's :class:`SwapController`, whose events (activated, rolled
back) are told to the agent so it can publish them, and whose rollbacks also roll the store
back so the bad release is not offered again. The power policy's light variant comes and goes
the same way (:meth:`ModelHost.swap_in_light`, :meth:`ModelHost.restore_from_light`), as a
temporary version of the model it lightens.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.config import ModelEntry, RuntimeSettings, ServingSettings
from edge_agent.errors import EdgeAgentError
from edge_agent.serving import LoadedVersion, ModelRegistry, ServedModel
from edge_agent.serving.loading import load_version
from edge_agent.serving.metrics import ServingMetrics
from edge_agent.serving.swap import SwapController, Verdict
from edge_agent.wire.states import SwapState

if TYPE_CHECKING:
    from edge_agent.agent.reload import ReloadPlan
    from edge_agent.agent.telemetry import AgentTelemetry
    from edge_agent.agent.updates import AgentUpdates
    from edge_agent.delivery.store import InstalledModel
    from edge_agent.delivery.update import ShadowVerdict
    from edge_agent.telemetry.profile import Profile

log = logging.getLogger(__name__)

MAX_EVENTS = 1000
"""Swap events kept in memory; older ones are in the log and on the broker."""

SwapEvent = dict[str, Any]
"""What a swap controller reports (``model``, ``state``, ``reason``, versions)."""

LIGHT = "+light"
"""Ends the version label of a light variant swapped in for a model (``3+light``): status,
results and swap events say which version served, and nothing mistakes it for a release."""


def is_light(version: str) -> bool:
    """Whether ``version`` is a light variant's label (see :data:`LIGHT`)."""
    return version.endswith(LIGHT)


class ModelHost:
    """Loads, swaps and rolls back the agent's models; owns their registry and metrics.

    ``on_served`` runs for every model that starts being served (the agent attaches capture);
    ``on_event`` for every swap event, after the store has been rolled back where needed.
    ``telemetry`` and ``updates`` are set by the agent once they exist.
    """

    def __init__(
        self,
        runtime: RuntimeSettings,
        serving: ServingSettings,
        *,
        on_served: Callable[[ServedModel], None],
        on_event: Callable[[SwapEvent], None],
    ) -> None:
        self.runtime = runtime
        self.serving = serving
        self.models = ModelRegistry()
        self.metrics = ServingMetrics()
        self.controllers: dict[str, SwapController] = {}
        self.entries: dict[str, ModelEntry] = {}
        self.events: deque[SwapEvent] = deque(maxlen=MAX_EVENTS)
        """The latest swap events (bounded: an agent runs for months)."""
        self.telemetry: AgentTelemetry | None = None
        self.updates: AgentUpdates | None = None
        self.delivered: Collection[str] = ()
        """Names the registry delivers (a rollback of one of them also rolls its store back)."""
        self._on_served = on_served
        self._on_event = on_event
        self._references: dict[str, dict[str, Profile | None]] = {}
        """Each loaded version's drift reference profile, by model and version."""
        self._withdrawn: set[str] = set()
        """Models being rolled back by a signed rollout (their release is not rejected)."""

    def _load(
        self, name: str, version: str, path: Path, manifest: Mapping[str, Any] | None
    ) -> LoadedVersion:
        return load_version(
            name,
            version,
            path,
            self.runtime,
            isolation=self.serving.isolation,
            manifest=manifest,
            batching=self.serving.batching,
        )

    def add(
        self, entry: ModelEntry, version: str = "1", manifest: Mapping[str, Any] | None = None
    ) -> ServedModel:
        """Load ``entry`` and serve it under its name (raises what loading raises)."""
        reference = _load_reference(entry.profile)
        served = ServedModel(entry.name, self._load(entry.name, version, entry.path, manifest))
        self.models.add(served)
        self.metrics.attach(served)
        self._references[entry.name] = {version: reference}
        if self.telemetry is not None:
            self.telemetry.attach(served, reference)
        self._on_served(served)
        self.controllers[entry.name] = SwapController(
            served, self.serving.gates, on_event=self._swap_event
        )
        self.entries[entry.name] = entry
        log.info(
            "%s v%s loaded from %s on %s",
            entry.name,
            version,
            entry.path,
            served.active.backend.delegate.name,
        )
        return served

    def remove(self, name: str) -> None:
        """Stop serving ``name`` (in-flight requests finish on the old version)."""
        served = self.models.remove(name)
        self.controllers.pop(name).close()
        if self.telemetry is not None:
            self.telemetry.detach(name)
        self._references.pop(name, None)
        self.entries.pop(name)
        if served is not None:
            served.active.drain_and_close()
        log.info("%s: no longer served", name)

    def swap_in(
        self,
        name: str,
        version: str,
        path: Path,
        manifest: Mapping[str, Any] | None = None,
        profile: Path | None = None,
    ) -> bool:
        """Load ``path`` as a new version of ``name`` and put it through the swap gates.

        ``profile`` is the version's drift reference: once the version is active, drift is
        judged against it (a profile that does not load refuses the version, like a model
        that does not load).
        """
        reference = _load_reference(profile)
        controller = self.controllers[name]
        candidate = self._load(name, version, path, manifest)
        with controller.lock:  # the power policy's swaps wait: the release is judged first
            self._leave_light(name, f"v{version} arrives: judged against the model's own version")
            verdict = controller.try_candidate(candidate)
        self.metrics.swaps.labels(name, "activate" if verdict.ok else "reject").inc()
        self.metrics.mark_active(controller.served)
        if verdict.ok:
            self._references.setdefault(name, {})[version] = reference
            self._follow_reference(name)
            self._prune_references(name)
        return verdict.ok

    def swap_in_light(self, name: str, light: ModelEntry, why: str) -> Verdict:
        """Put ``light``'s file through ``name``'s swap gates as a temporary version of it.

        The version that serves now stays loaded as the controller's ``previous`` (the one
        :meth:`restore_from_light` returns to). A file that does not load is refused like a
        candidate that fails its gates: reported as a rejected swap, and ``name`` keeps serving.
        """
        controller = self.controllers[name]
        with controller.lock:  # a release swapped in meanwhile would leave a wrong label
            return self._swap_in_light(controller, name, light, why)

    def _swap_in_light(
        self, controller: SwapController, name: str, light: ModelEntry, why: str
    ) -> Verdict:
        active = controller.served.active.version
        if is_light(active):
            return Verdict(True, f"v{active} serves already")
        if controller.watching is not None:  # its rollback target must stay the old release
            return Verdict(
                False, f"v{controller.watching} is in its watch window", conclusive=False
            )
        version = f"{active}{LIGHT}"
        try:
            reference = _load_reference(light.profile)
            candidate = self._load(name, version, light.path, None)
        except (EdgeAgentError, ValueError) as exc:
            verdict = Verdict(False, f"cannot load {light.path.name}: {exc}")
            controller.refuse(version, verdict.reason)
            self.metrics.swaps.labels(name, "reject").inc()
            return verdict
        verdict = controller.try_candidate(candidate, why)
        self.metrics.swaps.labels(name, "activate" if verdict.ok else "reject").inc()
        self.metrics.mark_active(controller.served)
        if verdict.ok:
            self._references.setdefault(name, {})[version] = reference
            self._follow_reference(name)
        return verdict

    def restore_from_light(self, name: str, why: str) -> str | None:
        """Swap the version that served before the light variant back in.

        Returns that version, or None when ``name`` does not run a light variant (or has
        nothing to return to).
        """
        controller = self.controllers.get(name)
        if controller is None or not is_light(controller.served.active.version):
            return None
        if controller.previous is None:  # e.g. the light variant replaced a failed release
            log.error("%s: runs its light variant with no version to return to", name)
            return None
        restored = controller.restore(why)
        self.metrics.swaps.labels(name, "restore").inc()
        self.metrics.mark_active(controller.served)
        self._follow_reference(name)
        return restored.version

    def _leave_light(self, name: str, why: str) -> None:
        """Put ``name``'s own version back before a release or a reload is judged.

        A release judged against the light variant would be compared with the wrong answers
        and timings, and its rollback target would be the light variant: rolled back, the
        device stayed on it, and when saving ended it had no own version to return to. The
        power policy puts the light variant back on (over the new version, after its watch
        window) while the device still saves.
        """
        controller = self.controllers[name]
        if is_light(controller.served.active.version) and controller.previous is not None:
            self.restore_from_light(name, why)

    def serve_installed(self, installed: InstalledModel) -> None:
        """Serve a model from the store (at start-up, or its first delivered version)."""
        entry = ModelEntry(name=installed.name, path=installed.path, profile=installed.profile)
        self.add(entry, version=str(installed.version), manifest=installed.manifest)

    def _follow_reference(self, name: str) -> None:
        """Point drift detection at the profile of the version ``name`` serves now."""
        served = self.models.get(name)
        if served is None or self.telemetry is None:
            return
        references = self._references.get(name, {})
        self.telemetry.set_reference(name, references.get(served.active.version))

    def _prune_references(self, name: str) -> None:
        """Keep the drift profiles of the versions that can serve: active, and rollback's.

        Every activated version added one, for the agent's life.
        """
        served, controller = self.models.get(name), self.controllers.get(name)
        references = self._references.get(name)
        if served is None or references is None:
            return
        keep = {served.active.version}
        if controller is not None and controller.previous is not None:
            keep.add(controller.previous.version)
        for version in [v for v in references if v not in keep]:
            del references[version]

    def accept_release(self, installed: InstalledModel) -> ShadowVerdict:
        """The update manager's shadow check: the health-gated swap (or first serving).

        Only called with a registry configured, so the delivery code (and the TUF client it
        brings) is imported here, not by an agent serving local files.
        """
        from edge_agent.delivery.update import ShadowVerdict

        try:
            if self.models.get(installed.name) is None:
                self.serve_installed(installed)
                return ShadowVerdict(True, "first version of this model: nothing to compare")
            ok = self.swap_in(
                installed.name,
                str(installed.version),
                installed.path,
                installed.manifest,
                installed.profile,
            )
        except EdgeAgentError as exc:
            return ShadowVerdict(False, f"cannot load it: {exc}")
        verdict = self.controllers[installed.name].last_verdict
        if verdict is None:
            return ShadowVerdict(ok, "")
        # too little traffic is no verdict on the model: it stays staged and is tried again
        return ShadowVerdict(ok, verdict.reason, conclusive=verdict.conclusive)

    def rollout_rollback(self, name: str, reason: str) -> None:
        """The group's signed rollout was rolled back: return to the previous release.

        The release left is not rejected: the fleet's gates failed, not this device, so a later
        rollout of the same release can bring it back (a watch-window rollback still rejects).
        """
        controller = self.controllers.get(name)
        if controller is not None:  # the light variant's rollback target is the release
            self._leave_light(name, f"rolling back: {reason}")
        if controller is not None and controller.previous is not None:
            self._withdrawn.add(name)  # its event rolls the store back, keeping the release
            try:
                controller.rollback(reason)
            finally:
                self._withdrawn.discard(name)
            return
        assert self.updates is not None
        previous = self.updates.store.previous(name)
        if previous is None:
            log.error("%s: the rollout was rolled back but no previous version is installed", name)
            return
        self.updates.roll_back(name, reason, reject=False)
        if controller is not None:  # not loaded any more (e.g. after a restart): load it
            restored = self._load(name, str(previous.version), previous.path, previous.manifest)
            reference = _load_reference(previous.profile)
            self._references.setdefault(name, {})[str(previous.version)] = reference
            controller.served.swap(restored).drain_and_close()
            self.metrics.mark_active(controller.served)
            self._follow_reference(name)
            self._prune_references(name)

    def apply_reload(self, plan: ReloadPlan) -> None:
        """Remove, add and swap the config's models; a model that fails to load is kept."""
        for name in plan.remove:
            self.remove(name)
        for entry in [*plan.add, *plan.swap]:
            try:
                if entry in plan.add:
                    self.add(entry)
                    continue
                served = self.models.get(entry.name)
                assert served is not None
                own = served.active.version.removesuffix(LIGHT)  # saving: "2+light" -> "2"
                if self.swap_in(entry.name, str(int(own) + 1), entry.path, None, entry.profile):
                    self.entries[entry.name] = entry
            except (EdgeAgentError, ValueError) as exc:
                log.error("reload: model %s kept as it was: %s", entry.name, exc)

    def _swap_event(self, event: SwapEvent) -> None:
        self.events.append(event)
        rolled_back = event["state"] == SwapState.ROLLED_BACK
        light = is_light(str(event["version"]))  # a temporary version: the store never had it
        if (
            rolled_back
            and not light
            and self.updates is not None
            and event["model"] in self.delivered
        ):
            own_failure = event["model"] not in self._withdrawn
            self.updates.roll_back(event["model"], event["reason"], reject=own_failure)
        if rolled_back:
            self.metrics.swaps.labels(event["model"], "rollback").inc()
            served = self.models.get(event["model"])
            if served is not None:
                self.metrics.mark_active(served)
            self._follow_reference(event["model"])
        self._on_event(event)

    def close(self) -> None:
        """Close the controllers, then drain and close every model."""
        for controller in self.controllers.values():
            controller.close()
        for served in self.models:
            served.active.drain_and_close()


def _load_reference(path: Path | None) -> Profile | None:
    """The drift reference profile at ``path`` (the profile code is imported only for one)."""
    if path is None:
        return None
    from edge_agent.telemetry.profile import load_profile

    return load_profile(path)
