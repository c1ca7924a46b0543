"""The device's side of a rollout: which release the signed document assigns to this device.

Pure decisions (:func:`release_for_device`, :func:`plan_for_device`) take the verified document,
the device id, the time and what the device has installed, and return data; the agent and the
simulator act on them the same way. :func:`fetch_rollout` reads ``rollouts/<group>.json``
through a refreshed :class:`DeviceUpdater` (TUF lookup, then the bytes over MQTT, verified
against the signed length and sha256): a document that does not verify is never acted on.
:class:`RolloutSource` wraps a model source so that ``UpdateManager`` installs the release the
rollout assigns instead of the newest one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from tuf.api import exceptions as tuf_errors

from edge_agent.delivery.rollout_document import RolloutDocument, rollout_target_path
from edge_agent.delivery.waves import wave_of
from edge_agent.errors import UpdateError
from edge_agent.trust.device.client import DeviceUpdater, describe_tuf_error
from edge_agent.trust.device.fetcher import TARGETS_URL, registry_path
from edge_agent.trust.device.transfer import Progress, fetch_stream
from edge_agent.trust.targets import ModelRelease

CLOCK_SKEW_S = 300.0
"""A wave opened up to this long "in the future" of the device's clock counts as open."""


def opened_waves(doc: RolloutDocument, now: float) -> int:
    """How many waves are open at ``now`` (device clock, with :data:`CLOCK_SKEW_S` slack)."""
    return sum(1 for opened_at in doc.opened if opened_at <= now + CLOCK_SKEW_S)


def release_for_device(doc: RolloutDocument, device_id: str, now: float) -> int | None:
    """The release ``doc`` assigns to ``device_id`` at ``now``; None: nothing to run yet.

    Devices whose wave is open run ``doc.release``; the others (and everyone after a rollback)
    run ``doc.previous``, which is None for a model's first rollout.
    """
    if doc.state == "rolled_back":
        return doc.previous
    if doc.state == "completed":
        return doc.release
    if wave_of(device_id, doc.waves, doc.salt) < opened_waves(doc, now):
        return doc.release
    return doc.previous


@dataclass(frozen=True)
class DevicePlan:
    """What a device should do about one rollout."""

    action: str
    """``stay``, ``install`` (``release``) or ``roll_back`` (to ``release``, from ``leaving``)."""
    release: int | None
    reason: str
    leaving: int | None = None
    """For ``roll_back``: the release the rollout withdrew. The device leaves it but does not
    reject it: a signed rollback says the *fleet* gates failed, not that it failed here."""


def plan_for_device(
    doc: RolloutDocument,
    device_id: str,
    now: float,
    active: int | None,
    rejected: Collection[int] = (),
) -> DevicePlan:
    """Turn the assignment into an action, given what the device runs and has refused.

    ``rejected`` holds only the releases that failed on this device (its shadow check, its
    watch window, a failed install); a rolled-back document never adds to it, so a later
    rollout of the same release can bring the device back to it.
    """
    target = release_for_device(doc, device_id, now)
    tag = f"rollout {doc.id} ({doc.state})"
    if target is None:
        return DevicePlan("stay", None, f"{tag}: this device's wave is not open yet")
    if active == target:
        return DevicePlan("stay", target, f"{tag}: release {target} is already active")
    if target in rejected:
        return DevicePlan(
            "stay", active, f"{tag}: release {target} was rejected on this device before"
        )
    if doc.state == "rolled_back" and active == doc.release:
        return DevicePlan(
            "roll_back",
            target,
            f"{tag}: release {doc.release} withdrawn ({doc.reason or 'rolled back'})",
            leaving=doc.release,
        )
    if active is not None and target < active:
        return DevicePlan(
            "stay", active, f"{tag}: active release {active} is newer than {target}; kept"
        )
    return DevicePlan("install", target, f"{tag}: assigned release {target}")


def fetch_rollout(updater: DeviceUpdater, group: str) -> RolloutDocument | None:
    """The verified rollout document of ``group`` (None when the repository signs none).

    ``updater`` must be refreshed. Raises UpdateError when the document cannot be fetched, does
    not match its signed length/sha256, or is malformed.
    """
    path = rollout_target_path(group)
    target = updater.lookup(path)
    if target is None:
        return None
    remote = registry_path(TARGETS_URL + target.get_prefixed_paths()[0])
    try:
        data = b"".join(fetch_stream(updater.link, remote, updater.settings, updater.cancel))
        target.verify_length_and_hashes(data)
    except tuf_errors.LengthOrHashMismatchError as exc:
        raise UpdateError(
            f"{path}: the fetched rollout document does not match signed metadata ({exc}); ignored"
        ) from exc
    except tuf_errors.DownloadError as exc:
        raise UpdateError(f"fetching {path} failed: {describe_tuf_error(exc)}") from exc
    return RolloutDocument.from_bytes(data)


class RolloutSource:
    """A ``ModelSource`` whose ``latest(name)`` is the release the group's rollout assigns.

    Without a rollout document for the model, a device with nothing active takes the newest
    signed release (first install) and a device with an active release keeps it: in a group,
    only a signed rollout moves devices. When the rollout was rolled back, ``roll_back`` is
    called (the agent returns to its previous release, keeping the withdrawn one installable
    for a later rollout) and the restored release is returned, so the update manager finds it
    "up to date".
    """

    def __init__(
        self,
        inner: DeviceUpdater,
        device_id: str,
        group: str,
        *,
        active: Callable[[str], int | None],
        rejected: Callable[[str], Collection[int]],
        roll_back: Callable[[str, str], None],
        clock: Callable[[], float],
    ) -> None:
        self.inner = inner
        self.cancel: threading.Event = inner.cancel
        self.device_id = device_id
        self.group = group
        self._active = active
        self._rejected = rejected
        self._roll_back = roll_back
        self._clock = clock
        self.last_plan: DevicePlan | None = None

    def refresh(self) -> None:
        """Refresh signed metadata (timestamp -> snapshot -> targets -> rollouts)."""
        self.inner.refresh()

    def latest(self, name: str) -> ModelRelease:
        """The signed release this device should run now (see the class docstring)."""
        doc = fetch_rollout(self.inner, self.group)
        active = self._active(name)
        if doc is None or doc.model != name:
            if active is None:
                return self.inner.latest(name)
            return self._release(name, active)
        plan = plan_for_device(doc, self.device_id, self._clock(), active, self._rejected(name))
        self.last_plan = plan
        if plan.action == "roll_back":
            self._roll_back(name, plan.reason)
            return self._release(name, self._active(name) or 0)
        if plan.release is None:
            raise UpdateError(plan.reason)
        return self._release(name, plan.release)

    def download(
        self,
        release: ModelRelease,
        progress: Progress | None = None,
        *,
        have: Mapping[str, Path] | None = None,
        report: Callable[[str], None] | None = None,
    ) -> tuple[Path, ModelRelease]:
        """A verified local file of ``release`` (from a delta on ``have`` when signed)."""
        return self.inner.download(release, progress, have=have, report=report)

    def download_parts(
        self, release: ModelRelease, progress: Progress | None = None
    ) -> dict[str, tuple[Path, str]]:
        """The package's other verified files of ``release``."""
        return self.inner.download_parts(release, progress)

    def close(self) -> None:
        """Release the inner source."""
        self.inner.close()

    def _release(self, name: str, number: int) -> ModelRelease:
        return self.inner.release(name, number)  # this device's variant of it
