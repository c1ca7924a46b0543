"""The update state machine: one model update from "is there something new?" to active.

::

    idle -> downloading -> verified -> staged -> (shadow check) -> active
                 |             |          |            |
                 +-------------+----------+------------+--> failed (reason)
    active -> rolled_back (reason)          a bad version is rejected, never reinstalled

Every transition is published on the device's rollout topic as the wire contract's
:class:`~edge_agent.wire.transitions.Transition` (re-exported here with ``UpdateState``). Each
state has a time limit, ``cancel()`` stops whatever runs, and every run starts afresh from
idle, so a failed update never blocks the next (a partial download is kept and resumed). The
active model is only replaced by ``ModelStore.activate``, after the new file verified and
passed the check.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from edge_agent.delivery.store import InstalledModel, ModelStore
from edge_agent.errors import EdgeAgentError, UpdateError
from edge_agent.transport import topics
from edge_agent.transport.topics import DeviceChannel
from edge_agent.trust.device.transfer import Progress
from edge_agent.trust.targets import ModelRelease, check_installable
from edge_agent.wire.states import UpdateState
from edge_agent.wire.transitions import Transition

__all__ = [
    "CLOCK_FLOOR",
    "ModelSource",
    "ShadowVerdict",
    "Transition",
    "UpdateLimits",
    "UpdateManager",
    "UpdateState",
    "accept_without_check",
]

log = logging.getLogger(__name__)

HISTORY_LIMIT = 256
"""Transitions kept in ``UpdateManager.history`` (newest): an agent that checks every few
minutes for years, failing each time against a broken registry, must not grow without bound.
The full record is what it published on its rollout topic."""

CLOCK_FLOOR = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp()
"""Before this the device clock is certainly wrong (no RTC, no NTP yet): expiry cannot be
checked, so nothing is activated."""


@dataclass(frozen=True)
class ShadowVerdict:
    """What the shadow check concluded about a staged model."""

    ok: bool
    reason: str = ""
    conclusive: bool = True
    """False when the check could not judge (too little traffic to compare, say): the update
    fails this time but the version is not rejected, so a quiet hour cannot ban a good
    release for good; it stays staged and the next update checks it again."""


def accept_without_check(_model: InstalledModel) -> ShadowVerdict:
    """The default shadow check: accept (the daemon injects a real one)."""
    return ShadowVerdict(True, "no shadow check configured")


@dataclass(frozen=True)
class UpdateLimits:
    """The longest each state may last, in seconds."""

    refresh_s: float = 120.0
    download_s: float = 900.0
    install_s: float = 120.0
    shadow_s: float = 300.0


class ModelSource(Protocol):
    """Where verified models come from (``DeviceUpdater``; tests may inject their own)."""

    cancel: threading.Event

    def refresh(self) -> None:
        """Fetch and verify signed metadata."""

    def latest(self, name: str) -> ModelRelease:
        """The newest signed release of ``name``."""

    def download(
        self,
        release: ModelRelease,
        progress: Progress | None = None,
        *,
        have: Mapping[str, Path] | None = None,
        report: Callable[[str], None] | None = None,
    ) -> tuple[Path, ModelRelease]:
        """A verified local file of ``release``.

        ``have``: model files the device holds by sha256 (a signed delta from one of them may
        be fetched instead of the whole model); ``report`` hears how the delta went.
        """

    def download_parts(
        self, release: ModelRelease, progress: Progress | None = None
    ) -> dict[str, tuple[Path, str]]:
        """The package's other verified files: ``{part: (file, sha256)}``."""

    def close(self) -> None:
        """Release what the source holds."""


_PAUSE_POLL_S = 0.5
"""How often a limit that pauses asks whether the link is paused (the pause is counted to
within this)."""


class _Deadline:
    """Sets ``cancel`` when a state overstays its limit; remembers that it did.

    Time while ``paused()`` holds (the link budget outside its windows) does not count: the
    transfer is waiting by design, not stuck, as its own ``deadline_s`` already allows.
    """

    def __init__(
        self, cancel: threading.Event, seconds: float, paused: Callable[[], bool] | None = None
    ) -> None:
        self.fired = False
        self._cancel = cancel
        self._seconds = seconds
        self._paused = paused
        self._done = threading.Event()
        self._lock = threading.Lock()  # the limit fires only before the state has ended
        self._thread = threading.Thread(target=self._run, name="update-limit", daemon=True)

    def _run(self) -> None:
        left = self._seconds
        step = self._seconds if self._paused is None else _PAUSE_POLL_S
        last, was_paused = time.monotonic(), self._is_paused()
        while not self._done.wait(min(left, step)):
            now, paused = time.monotonic(), self._is_paused()
            if not (was_paused or paused):  # a step touching a pause is the transfer's
                left -= now - last
            last, was_paused = now, paused
            if left <= 0:
                with self._lock:
                    if not self._done.is_set():
                        self.fired = True
                        self._cancel.set()
                return

    def _is_paused(self) -> bool:
        return self._paused is not None and self._paused()

    def __enter__(self) -> _Deadline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done.set()


class UpdateManager:
    """Runs updates of models in ``store`` from a ``ModelSource``, one at a time."""

    def __init__(
        self,
        store: ModelStore,
        source_factory: Callable[[threading.Event], ModelSource],
        publish: Callable[[str, bytes], Any],
        device_id: str,
        *,
        shadow_check: Callable[[InstalledModel], ShadowVerdict] = accept_without_check,
        limits: UpdateLimits | None = None,
        allow_downgrade: bool = False,
        clock: Callable[[], float] = time.time,
        link_paused: Callable[[], bool] | None = None,
    ) -> None:
        """``link_paused`` says whether the link budget holds transfers back now.

        Outside the budget's windows the transfer waits by design; that time does not count
        against the refresh and download limits (the transfer's ``deadline_s`` excludes it too).
        """
        self.store = store
        self.source_factory = source_factory
        self.publish = publish
        self.device_id = topics.check_device_id(device_id)
        self.shadow_check = shadow_check
        self.limits = limits or UpdateLimits()
        self.allow_downgrade = allow_downgrade
        self.clock = clock
        self.link_paused = link_paused
        self.state = UpdateState.IDLE
        self.history: deque[Transition] = deque(maxlen=HISTORY_LIMIT)
        self._run_lock = threading.Lock()
        self._cancel = threading.Event()
        self._topic = topics.device_topic(device_id, DeviceChannel.ROLLOUT)

    def cancel(self) -> None:
        """Stop the running update (it ends as failed: cancelled)."""
        self._cancel.set()

    def update(self, name: str, progress: Progress | None = None) -> Transition:
        """Bring model ``name`` to its newest signed release; returns the final transition.

        Never raises for a failed update (the failure is the returned, published transition);
        UpdateError only when another update is already running.
        """
        if not self._run_lock.acquire(blocking=False):
            raise UpdateError("an update is already running; cancel it or wait")
        try:
            self._cancel = threading.Event()
            self.state = UpdateState.IDLE
            return self._run(name, progress)
        finally:
            self.state = UpdateState.IDLE
            self._run_lock.release()

    def roll_back(self, name: str, reason: str, *, reject: bool = True) -> Transition:
        """Return to the previous version; reject the one left when it proved bad *here*.

        ``reject=False`` is for a signed rollout rollback: the fleet's gates failed, not this
        device, so the release stays installable and a later rollout of it can proceed.
        """
        bad = self.store.active(name)
        restored = self.store.rollback(name)
        if bad is not None and reject:
            self.store.reject(name, bad.version, reason)
        version = bad.version if bad is not None else restored.version
        return self._emit(
            name, version, UpdateState.ROLLED_BACK, f"{reason}; v{restored.version} active again"
        )

    # -- the run -------------------------------------------------------------------------

    def _run(self, name: str, progress: Progress | None) -> Transition:
        version: int | None = None
        source: ModelSource | None = None
        try:
            if self.clock() < CLOCK_FLOOR:
                stamp = datetime.fromtimestamp(self.clock(), timezone.utc).isoformat()
                raise UpdateError(
                    f"the device clock reads {stamp}, which cannot be right: "
                    "metadata expiry cannot be checked, so nothing is installed; "
                    "fix the time (NTP / RTC) first"
                )
            source = self.source_factory(self._cancel)
            with self._limit(self.limits.refresh_s, "refreshing signed metadata", link=True):
                source.refresh()
                release = source.latest(name)
            version = release.release
            active = self.store.active(name)
            if active is not None and active.version == release.release:
                return Transition(
                    device=self.device_id,
                    model=name,
                    version=version,
                    state=UpdateState.ACTIVE,
                    reason="up to date",
                    timestamp=self.clock(),
                )
            check_installable(
                release,
                self.store.newest_version(name),
                self.store.rejected(name),
                allow_downgrade=self.allow_downgrade,
            )
            self._emit(
                name, version, UpdateState.DOWNLOADING, f"release {version}: {release.filename}"
            )
            have = {model.sha256: model.path for model in self.store.list()}

            def report(note: str) -> None:
                self._emit(name, version, UpdateState.DOWNLOADING, note)

            with self._limit(self.limits.download_s, "downloading", link=True):
                path, trusted = source.download(release, progress, have=have, report=report)
                parts = source.download_parts(trusted, progress)
            self._emit(
                name, version, UpdateState.VERIFIED, "length and sha256 match signed metadata"
            )
            with self._limit(self.limits.install_s, "installing"):
                staged = self.store.install(
                    name, version, path, trusted.manifest, trusted.sha256, parts
                )
            self._emit(name, version, UpdateState.STAGED, str(staged.path.name))
            verdict = self._shadow(staged)
            if not verdict.ok and not verdict.conclusive:
                return self._emit(
                    name,
                    version,
                    UpdateState.FAILED,
                    f"shadow check was inconclusive ({verdict.reason}); v{version} stays "
                    "staged and is checked again on the next update",
                )
            if not verdict.ok:
                self.store.reject(name, version, f"shadow check: {verdict.reason}")
                return self._emit(
                    name, version, UpdateState.FAILED, f"shadow check refused it: {verdict.reason}"
                )
            self._check_cancel("activating")
            self.store.activate(name, version)
            return self._emit(name, version, UpdateState.ACTIVE, verdict.reason or "activated")
        except EdgeAgentError as exc:
            return self._emit(name, version, UpdateState.FAILED, str(exc))
        except Exception as exc:  # a bug must not wedge the agent's update loop
            log.exception("update of %s failed unexpectedly", name)
            return self._emit(name, version, UpdateState.FAILED, f"internal error: {exc!r}")
        finally:
            if source is not None:
                source.close()

    def _shadow(self, staged: InstalledModel) -> ShadowVerdict:
        """Run the check in its own thread so its time limit holds even if it hangs."""
        outcome: list[ShadowVerdict] = []

        def check() -> None:
            try:
                outcome.append(self.shadow_check(staged))
            except Exception as exc:
                outcome.append(ShadowVerdict(False, f"the check raised {exc!r}"))

        worker = threading.Thread(target=check, name="shadow-check", daemon=True)
        worker.start()
        deadline = time.monotonic() + self.limits.shadow_s
        while worker.is_alive() and time.monotonic() < deadline and not self._cancel.is_set():
            worker.join(0.05)
        if outcome:
            return outcome[0]
        self._check_cancel("shadow check")
        return ShadowVerdict(False, f"took longer than {self.limits.shadow_s:g} s")

    def _limit(self, seconds: float, what: str, *, link: bool = False) -> _Limit:
        """The time limit of a state; one that uses the link (``link``) pauses with it."""
        return _Limit(self, seconds, what, self.link_paused if link else None)

    def _check_cancel(self, what: str) -> None:
        if self._cancel.is_set():
            raise UpdateError(f"cancelled while {what}")

    def _emit(self, name: str, version: int | None, state: UpdateState, reason: str) -> Transition:
        transition = Transition(
            device=self.device_id,
            model=name,
            version=version,
            state=state,
            reason=reason,
            timestamp=self.clock(),
        )
        self.state = state
        self.history.append(transition)
        try:
            self.publish(self._topic, transition.encode())
        except Exception:  # reporting must never decide the update
            log.exception("could not publish the %s transition", state.value)
        return transition


class _Limit:
    """A state's time limit: cancels the source, and turns its error into a clear reason."""

    def __init__(
        self,
        manager: UpdateManager,
        seconds: float,
        what: str,
        paused: Callable[[], bool] | None = None,
    ) -> None:
        self.manager, self.what, self.seconds = manager, what, seconds
        self._deadline = _Deadline(manager._cancel, seconds, paused)

    def __enter__(self) -> None:
        self._deadline.__enter__()

    def __exit__(self, exc_type: object, exc: object, _tb: object) -> None:
        self._deadline.__exit__()
        if self._deadline.fired:
            raise UpdateError(
                f"{self.what} took longer than {self.seconds:g} s; stopped "
                "(the next update resumes where this one stopped)"
            ) from None
        if exc is None:
            self.manager._check_cancel(self.what)
