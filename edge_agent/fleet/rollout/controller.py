"""The rollout controller: opens waves while the gates pass, rolls back when they fail.

Flow of one rollout (one device group, one model)::

    create ──> wave 1 open ──(gates pass + soak)──> wave 2 open ──> ... ──> completed
                  │   ▲                                  │
          pause ──┘   └── resume                         └──(a gate fails)──> rolled_back
                  (timeout with no verdict) ──> timed_out (rolled back)     (abort: aborted)

Each change is saved to the state file first, then published as the signed document
``rollouts/<group>.json`` (``document.py``); devices act only on what TUF verifies. Every
:meth:`RolloutController.step` re-publishes the document if the repository does not sign what
the state says (a controller killed between the two resumes cleanly). A rolled-back release is
remembered per group and model and refused by later ``create`` calls unless the operator
passes ``retry``. Devices that ran it return to the previous release without rejecting it: a
device refuses a release for good only when it failed on that device (its own shadow check or
watch window), so a retried rollout of the same release can proceed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tuf.api.metadata import Targets

from edge_agent.delivery.rollout_document import check_group
from edge_agent.delivery.waves import check_waves, devices_through, partition
from edge_agent.errors import UpdateError
from edge_agent.fleet.rollout.gates import (
    Decision,
    GateThresholds,
    HealthSource,
    WaveReading,
    decide_step,
    evaluate_gates,
)
from edge_agent.fleet.rollout.publish import publish_rollout, published_rollout
from edge_agent.fleet.rollout.state import ControllerState, RolloutRecord, StateFile
from edge_agent.names import DEVICE_ID
from edge_agent.trust.operator.repository import OperatorRepository
from edge_agent.trust.targets import ModelRelease, releases_of

log = logging.getLogger(__name__)

ENDING = {"roll_back": "rolled_back", "time_out": "timed_out", "complete": "completed"}


DEFAULT_WAVES: tuple[float, ...] = (5, 25, 100)
"""Cumulative percentages of the group a rollout opens, wave by wave."""


class RolloutController:
    """Creates, advances, pauses, resumes and aborts rollouts of one repository."""

    def __init__(
        self,
        repo: OperatorRepository,
        state_path: Path,
        health: HealthSource | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.state_file = StateFile(state_path)
        self.health = health
        self.clock = clock

    # -- reading ---------------------------------------------------------------------------

    def get(self, group: str) -> RolloutRecord | None:
        """The current (or last) rollout of ``group``."""
        return self.state_file.load().rollouts.get(group)

    def all(self) -> list[RolloutRecord]:
        """Every group's current (or last) rollout."""
        return list(self.state_file.load().rollouts.values())

    def waves_of(self, record: RolloutRecord) -> list[list[str]]:
        """The member devices of each wave."""
        return partition(record.members, record.waves, record.salt)

    # -- commands --------------------------------------------------------------------------

    def create(
        self,
        group: str,
        model: str,
        release: int,
        members: Iterable[str],
        *,
        waves: Sequence[float] = DEFAULT_WAVES,
        previous: int | None = None,
        thresholds: GateThresholds | None = None,
        salt: str | None = None,
        retry: bool = False,
    ) -> RolloutRecord:
        """Start rolling ``model`` release ``release`` out to ``members`` of ``group``.

        Opens the first wave at once. Raises UpdateError when the group already has a running
        rollout, the release is not signed or was withdrawn in this group, the group is empty or
        a member's id breaks the device-id rule. ``retry`` rolls out a release that was rolled
        back in this group before (once the cause is understood, e.g. a gate that misread).
        """
        check_group(group)
        wave_list = check_waves(waves)
        member_list = sorted(set(members))
        for member in member_list:  # an id that breaks the rule could never follow
            DEVICE_ID.check(member, "device", error=UpdateError)
        if not member_list:
            raise UpdateError(f"group {group!r} has no devices: pass --devices or --from-monitor")
        signed = {r.release for r in self._releases(model)}
        if release not in signed:
            raise UpdateError(
                f"{model} release {release} is not signed in {self.repo.repo_dir} "
                f"(signed: {sorted(signed) or 'none'}); publish it with `edge-agent repo add`"
            )
        with self.state_file.locked():
            state = self.state_file.load()
            current = state.rollouts.get(group)
            if current is not None and current.running:
                raise UpdateError(
                    f"group {group!r} already has rollout {current.id} of {current.model} "
                    f"release {current.release} ({current.status}); abort it or wait"
                )
            if state.is_withdrawn(group, model, release):
                if not retry:
                    raise UpdateError(
                        f"{model} release {release} was rolled back in group {group!r} before; "
                        "publish a fixed release, or pass --retry to roll it out again"
                    )
                state.reinstate(group, model, release)
            if previous is None:
                previous = self._previous(state, group, model, release, signed)
            now = self.clock()
            record = RolloutRecord(
                id=f"r{int(now)}-{uuid.uuid4().hex[:6]}",
                group=group,
                model=model,
                release=release,
                previous=previous,
                waves=wave_list,
                salt=salt or group,
                members=member_list,
                thresholds=(thresholds or GateThresholds()).as_dict(),
                opened=[now],
                created_at=now,
                updated_at=now,
                issued_at=now,
                reason=f"wave 1 of {len(wave_list)} opened",
            )
            record.document()  # validates before anything is saved
            record.log(now, "created", record.reason, previous=previous)
            state.rollouts[group] = record
            self._save_and_publish(state, record)
            return record

    def step(self, group: str) -> Decision:
        """Read the gates of the opened waves and act on them (advance, roll back, ...)."""
        if self.health is None:
            raise UpdateError("this controller has no health source (start it with a monitor)")
        with self.state_file.locked():
            state = self.state_file.load()
            record = self._record(state, group)
            if not record.running:
                self._sync(record)
                return Decision("none", f"rollout is {record.status}")
            limits = GateThresholds.from_dict(record.thresholds)
            now = self.clock()
            cohort = devices_through(record.members, record.waves, record.salt, len(record.opened))
            window = max(1.0, min(limits.window_s, now - record.opened[-1]))
            reading = self.health.reading(
                record.model, record.release, record.previous, cohort, window, record.members
            )
            reading = _with_known_baselines(reading, record.last_gates.get("reading", {}))
            verdict = evaluate_gates(reading, limits)
            decision = decide_step(
                record.status,
                len(record.waves),
                len(record.opened),
                max(record.opened[-1], record.timer_from),
                verdict,
                now,
                limits,
            )
            record.last_gates = {
                "time": now,
                "wave": len(record.opened),
                "verdict": verdict.as_dict(),
                "reading": reading.as_dict(),
                "decision": {"action": decision.action, "reason": decision.reason},
            }
            self._apply(state, record, decision, now, verdict.as_dict())
            self._save_and_publish(state, record)
            return decision

    def pause(self, group: str, reason: str = "paused by the operator") -> RolloutRecord:
        """Hold the rollout at its current wave (failing gates still roll it back)."""
        return self._set_status(group, "paused", "rolling", reason)

    def resume(self, group: str, reason: str = "resumed by the operator") -> RolloutRecord:
        """Let a paused rollout advance again (the wave's timeout restarts now)."""
        return self._set_status(group, "rolling", "paused", reason)

    def abort(self, group: str, reason: str = "aborted by the operator") -> RolloutRecord:
        """Stop the rollout and send every device back to the previous release."""
        return self._set_status(group, "aborted", None, reason)

    def follow(
        self,
        group: str,
        poll_s: float = 5.0,
        stop: threading.Event | None = None,
        on_step: Callable[[RolloutRecord, Decision], None] | None = None,
    ) -> RolloutRecord:
        """Step every ``poll_s`` until the rollout ends (or ``stop`` is set)."""
        stop = stop or threading.Event()
        while True:
            decision = self.step(group)
            record = self._record(self.state_file.load(), group)
            if on_step is not None:
                on_step(record, decision)
            if not record.running or stop.wait(poll_s):
                return record

    # -- internals -------------------------------------------------------------------------

    def _set_status(
        self, group: str, status: str, required: str | None, reason: str
    ) -> RolloutRecord:
        with self.state_file.locked():
            state = self.state_file.load()
            record = self._record(state, group)
            if not record.running or (required is not None and record.status != required):
                raise UpdateError(
                    f"rollout {record.id} of group {group!r} is {record.status}; cannot make it "
                    f"{status}"
                )
            now = self.clock()
            if status == "rolling":
                record.timer_from = now  # the wave's soak and timeout restart at the resume
            record.status, record.reason, record.updated_at = status, reason, now
            record.issued_at = now
            if status == "aborted":
                state.withdraw(group, record.model, record.release)
            record.log(now, status, reason)
            self._save_and_publish(state, record)
            return record

    def _apply(
        self,
        state: ControllerState,
        record: RolloutRecord,
        decision: Decision,
        now: float,
        gates: dict[str, object],
    ) -> None:
        if decision.action in ("wait", "none"):
            record.updated_at = now
            return
        if decision.action == "advance":
            record.opened.append(now)
            record.reason = f"wave {len(record.opened)} of {len(record.waves)} opened"
        else:
            record.status = ENDING[decision.action]
            record.reason = decision.reason
            if decision.action in ("roll_back", "time_out"):
                state.withdraw(record.group, record.model, record.release)
        record.updated_at = record.issued_at = now
        record.log(now, decision.action, decision.reason, gates=gates)
        log.info("rollout %s: %s (%s)", record.id, decision.action, decision.reason)

    def _save_and_publish(self, state: ControllerState, record: RolloutRecord) -> None:
        self.state_file.save(state)
        self._sync(record)

    def _sync(self, record: RolloutRecord) -> None:
        """Publish the record's document unless the repository already signs exactly it."""
        wanted = record.document()
        try:
            current = published_rollout(self.repo, record.group)
        except UpdateError:
            current = None  # unreadable or tampered: sign it afresh
        if current != wanted:
            publish_rollout(self.repo, wanted)

    def _record(self, state: ControllerState, group: str) -> RolloutRecord:
        record = state.rollouts.get(group)
        if record is None:
            raise UpdateError(
                f"no rollout for group {group!r}; start one with `edge-agent fleet rollout create`"
            )
        return record

    def _releases(self, model: str) -> list[ModelRelease]:
        targets = self.repo.load(Targets.type, Targets).signed.targets
        return [r for r in releases_of(targets) if r.name == model]

    def _previous(
        self, state: ControllerState, group: str, model: str, release: int, signed: set[int]
    ) -> int | None:
        """The release devices stay on.

        The group's last completed one, else the newest signed release below ``release`` that
        was not withdrawn in the group.
        """
        last = state.rollouts.get(group)
        if last is not None and last.model == model and last.status == "completed":
            return last.release if last.release != release else last.previous
        candidates = [r for r in signed if r < release and not state.is_withdrawn(group, model, r)]
        return max(candidates) if candidates else None


def _with_known_baselines(reading: WaveReading, last: dict[str, Any]) -> WaveReading:
    """Fill a missing latency baseline (the whole's, each variant's) from the last reading.

    When the whole group (or every device of a variant) has left the previous release (the
    last wave), there is no baseline to read any more: the latency is judged against the one
    the earlier waves measured.
    """
    known = last.get("baseline_p95_ms")
    if reading.baseline_p95_ms is None and isinstance(known, (int, float)):
        reading = replace(reading, baseline_p95_ms=float(known))
    if not reading.variants:
        return reading
    known_parts = last.get("variants") or {}
    parts = []
    for name, part in reading.variants:
        known = (known_parts.get(name) or {}).get("baseline_p95_ms")
        if part.baseline_p95_ms is None and isinstance(known, (int, float)):
            part = replace(part, baseline_p95_ms=float(known))
        parts.append((name, part))
    return replace(reading, variants=tuple(parts))
