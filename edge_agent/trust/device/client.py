"""The device's TUF client: refresh signed metadata and download model targets over MQTT.

One ``DeviceUpdater`` per update cycle (ngclient's Updater refreshes once, with one reference
time), run in a worker thread (never paho's callback thread), holding a lock file on the
metadata directory so two processes never update the same trust state. The device is
provisioned with ``root.json`` only (:func:`provision`); everything else is verified from it.
Each refresh starts from the device's own durable trust anchor (``anchor.py``), never from
ngclient's ``root.json``, and ngclient's files are written crash-safely (``durable.py``).
A release that carries a signed delta from a model the device holds is fetched as the delta
and rebuilt (``delta.py``); any failure there falls back to downloading the whole model.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.ngclient import Updater, UpdaterConfig

from edge_agent import _zstd
from edge_agent._fs import make_dirs
from edge_agent.config import FetchSettings
from edge_agent.errors import UpdateError
from edge_agent.transport.client import MqttClient
from edge_agent.trust.device.anchor import advance, provision, remove_temp_files, trusted_root
from edge_agent.trust.device.delta import rebuild
from edge_agent.trust.device.durable import DurableUpdater
from edge_agent.trust.device.fetcher import METADATA_URL, TARGETS_URL, MqttFetcher, registry_path
from edge_agent.trust.device.link import RegistryLink
from edge_agent.trust.device.partial import DownloadResult, ResumableDownload
from edge_agent.trust.device.transfer import Progress
from edge_agent.trust.device.variants import Platform, choose_variant
from edge_agent.trust.targets import (
    DeltaRef,
    ModelRelease,
    choose_delta,
    newest_release,
    package_parts,
    part_target_path,
    release_of,
    releases_of,
)

__all__ = ["DeviceUpdater", "clean_downloads", "describe_tuf_error", "provision"]

log = logging.getLogger(__name__)


def describe_tuf_error(exc: Exception) -> str:
    """A reason a person can act on, for errors ngclient raises during refresh/download."""
    kind = type(exc).__name__
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        return (
            f"signed metadata has expired ({exc}): a freeze attack, a registry whose "
            "operator has not run `repo refresh`, or a device clock that is wrong"
        )
    if isinstance(exc, tuf_errors.BadVersionNumberError):
        return f"metadata version went backwards ({exc}): rollback attack refused"
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        return f"metadata is not signed by enough trusted keys ({exc})"
    if isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        return f"metadata does not match what the signed snapshot/timestamp says ({exc})"
    if isinstance(exc, tuf_errors.DownloadError):
        return f"could not fetch from the registry: {exc}"
    if isinstance(exc, tuf_errors.RepositoryError):
        return f"metadata refused ({kind}: {exc})"
    return f"{kind}: {exc}"


class DeviceUpdater:
    """Signed-metadata refresh and verified, resumable target downloads for one device."""

    def __init__(
        self,
        metadata_dir: Path,
        client: MqttClient,
        device_id: str,
        download_dir: Path,
        settings: FetchSettings | None = None,
        *,
        cancel: threading.Event | None = None,
        link: RegistryLink | None = None,
        platform: Platform | None = None,
    ) -> None:
        """``platform`` picks among a release's variants (None: a release must have one)."""
        self.metadata_dir = metadata_dir
        self.platform = platform
        self.download_dir = download_dir
        self.settings = settings or FetchSettings()
        self.cancel = cancel or threading.Event()
        self.link = link or RegistryLink(client, device_id)
        self._owns_link = link is None
        self._updater: Updater | None = None
        self._lock_file: IO[str] | None = None
        self.last_download: DownloadResult | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the lock file and stop listening for registry answers."""
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
        if self._owns_link:
            self.link.close()

    def __enter__(self) -> DeviceUpdater:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take_lock(self) -> None:
        if self._lock_file is not None:
            return
        make_dirs(self.metadata_dir)
        handle = (self.metadata_dir / ".lock").open("a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UpdateError(
                f"{self.metadata_dir}: another process is updating from this trust state; "
                "wait for it (or stop the agent before `models pull`)"
            ) from None
        self._lock_file = handle

    # -- metadata -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Fetch and verify timestamp -> snapshot -> targets (root rotations first).

        Raises UpdateError with the reason (expired, rolled back, badly signed, unreachable).
        """
        self._take_lock()
        remove_temp_files(self.metadata_dir)
        bootstrap = trusted_root(self.metadata_dir)
        refreshed = False
        try:
            updater = DurableUpdater(
                str(self.metadata_dir),
                METADATA_URL,
                target_dir=str(self.download_dir),
                target_base_url=TARGETS_URL,
                fetcher=MqttFetcher(self.link, self.settings, self.cancel),
                config=UpdaterConfig(prefix_targets_with_hash=True),
                bootstrap=bootstrap,
            )
            updater.refresh()
            refreshed = True
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            raise UpdateError(f"metadata refresh failed: {describe_tuf_error(exc)}") from exc
        except OSError as exc:
            raise UpdateError(
                f"{self.metadata_dir}: cannot write the trust state: {exc} (a full or "
                "read-only disk?); nothing trusted was lost, the next refresh retries"
            ) from exc
        finally:
            self._advance_anchor(raise_errors=refreshed)
        self._updater = updater

    def _advance_anchor(self, *, raise_errors: bool) -> None:
        """Keep any newer root ngclient verified (also after a failed refresh, as it does)."""
        try:
            advance(self.metadata_dir)
        except (OSError, UpdateError) as exc:
            if raise_errors:
                raise UpdateError(
                    f"{self.metadata_dir}: cannot record the newer trusted root: {exc}"
                ) from exc
            log.warning("%s: trusted root not advanced: %s", self.metadata_dir, exc)

    def releases(self) -> list[ModelRelease]:
        """Every model release in the verified targets metadata of the last refresh."""
        self._require_refresh()
        # ngclient persisted targets.json after verifying it in this very refresh; the
        # chosen release is re-read through get_targetinfo() (the trusted set) below.
        md = Metadata[Targets].from_file(str(self.metadata_dir / "targets.json"))
        if not isinstance(md.signed, Targets):
            raise UpdateError(f"{self.metadata_dir}/targets.json: not targets metadata")
        return releases_of(md.signed.targets)

    def latest(self, name: str) -> ModelRelease:
        """The newest signed release of model ``name``; UpdateError if there is none."""
        candidate = newest_release(self.releases(), name)
        if candidate is None:
            raise UpdateError(f"no signed release of model {name!r} in the registry")
        return self.release(name, candidate.release)

    def release(self, name: str, number: int) -> ModelRelease:
        """Release ``number`` of ``name``: the variant this device's platform runs best.

        UpdateError when the release is not signed, when no variant fits the platform, or
        when it has several variants and no platform was given to choose.
        """
        variants = [r for r in self.releases() if r.name == name and r.release == number]
        if not variants:
            raise UpdateError(f"{name} release {number} is not in signed metadata")
        if self.platform is not None:
            chosen = choose_variant(variants, self.platform)
        elif len(variants) == 1:
            chosen = variants[0]
        else:
            raise UpdateError(
                f"{name} release {number} has {len(variants)} variants "
                f"({', '.join(v.filename for v in variants)}); say which device this is "
                "(the agent's `device:`, or `--device` for `models pull`)"
            )
        return self._trusted(chosen.target_path)  # re-read through the trusted set

    def lookup(self, target_path: str) -> TargetFile | None:
        """The signed description of any target (rollout plans too); None if unsigned."""
        self._require_refresh()
        assert self._updater is not None
        try:
            return self._updater.get_targetinfo(target_path)
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            raise UpdateError(f"looking up {target_path}: {describe_tuf_error(exc)}") from exc

    def download(
        self,
        release: ModelRelease,
        progress: Progress | None = None,
        *,
        have: Mapping[str, Path] | None = None,
        report: Callable[[str], None] | None = None,
    ) -> tuple[Path, ModelRelease]:
        """Download ``release`` (resuming), verified against signed metadata.

        ``have`` maps the sha256 of model files this device holds to the files: when the
        release carries a signed delta from one of them, the delta is downloaded and the
        model rebuilt and verified instead. ``report`` hears what happened to the delta (used,
        or why not: then the whole model is downloaded).
        """
        trusted = self._trusted(release.target_path)
        assert self._updater is not None
        target = self._updater.get_targetinfo(trusted.target_path)
        assert target is not None
        rebuilt = self._via_delta(trusted, target, have or {}, progress, report)
        if rebuilt is not None:
            return rebuilt, trusted
        return self._fetch(target, progress).path, trusted

    def _via_delta(
        self,
        release: ModelRelease,
        target: TargetFile,
        have: Mapping[str, Path],
        progress: Progress | None,
        report: Callable[[str], None] | None,
    ) -> Path | None:
        """The model rebuilt from a delta and verified; None: download the whole model."""
        delta = choose_delta(release, have)
        final = ResumableDownload(self.download_dir, target, "", self.settings).final_path
        if delta is None or final.exists():  # nothing to build on, or already here
            return None
        say = report or (lambda note: log.info("%s", note))
        why = _zstd.unavailable()
        if why:
            say(f"delta from release {delta.from_release} not used: {why}; downloading the model")
            return None
        delta_file: Path | None = None
        try:
            delta_target = self._signed_delta(delta)
            delta_file = self._fetch(delta_target, progress).path
            base = have[delta.from_sha256]
            if base.stat().st_size != delta.from_length:
                raise UpdateError(f"{base}: not the {delta.from_length} bytes the delta needs")
            rebuild(base, delta_file, target, final)
        except (UpdateError, OSError) as exc:
            if self.cancel.is_set():
                raise
            say(
                f"delta from release {delta.from_release} failed ({exc}); downloading the "
                f"whole model ({target.length} B)"
            )
            return None
        finally:
            if delta_file is not None:
                delta_file.unlink(missing_ok=True)  # of no use once the model is built
        say(
            f"rebuilt from release {delta.from_release} with a {delta.length} B delta "
            f"({delta.length / max(target.length, 1):.0%} of the model's {target.length} B); "
            "length and sha256 match signed metadata"
        )
        return final

    def _signed_delta(self, delta: DeltaRef) -> TargetFile:
        """The delta's own signed target; UpdateError unless it is exactly what the pin says."""
        signed = self.lookup(delta.target_path)
        if (
            signed is None
            or signed.length != delta.length
            or signed.hashes.get("sha256") != delta.sha256
        ):
            raise UpdateError(
                f"{delta.target_path}: not signed as the release's metadata pins it (length or "
                "sha256)"
            )
        return signed

    def download_parts(
        self, release: ModelRelease, progress: Progress | None = None
    ) -> dict[str, tuple[Path, str]]:
        """Download the package's other files (profile, evaluation) of a trusted ``release``.

        Each must be a target in signed metadata that agrees with the signed manifest (length
        and sha256); UpdateError otherwise. A part the manifest names but the repository never
        signed (a release published before parts travelled) is left out with a warning.
        Returns ``{part: (verified file, sha256)}``.
        """
        self._require_refresh()
        assert self._updater is not None
        parts: dict[str, tuple[Path, str]] = {}
        for part, ref in package_parts(release.manifest).items():
            path = part_target_path(release.name, release.release, release.filename, part, ref)
            try:
                target = self._updater.get_targetinfo(path)
            except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
                raise UpdateError(f"looking up {path}: {describe_tuf_error(exc)}") from exc
            if target is None:
                log.warning(
                    "%s release %d: its %s is not a signed target (published by an older "
                    "edge-agent); installed without it",
                    release.name,
                    release.release,
                    part,
                )
                continue
            if target.hashes.get("sha256") != ref.get("sha256") or target.length != ref.get(
                "bytes"
            ):
                raise UpdateError(
                    f"{path}: signed metadata and the signed manifest disagree about the "
                    f"{part} (length or sha256); the release is not installed"
                )
            parts[part] = (self._fetch(target, progress).path, str(ref["sha256"]))
        return parts

    def _fetch(self, target: TargetFile, progress: Progress | None) -> DownloadResult:
        remote = registry_path(TARGETS_URL + target.get_prefixed_paths()[0])
        download = ResumableDownload(self.download_dir, target, remote, self.settings)
        try:
            result = download.run(self.link, self.cancel, progress)
        except tuf_errors.DownloadError as exc:
            raise UpdateError(
                f"downloading {target.path} failed: {describe_tuf_error(exc)} "
                "(what arrived is kept and the next try resumes)"
            ) from exc
        self.last_download = result
        return result

    def download_latest(
        self, name: str, progress: Progress | None = None
    ) -> tuple[Path, ModelRelease]:
        """Refresh if needed, then download the newest release of ``name``."""
        if self._updater is None:
            self.refresh()
        return self.download(self.latest(name), progress)

    # -- helpers --------------------------------------------------------------------------

    def _require_refresh(self) -> None:
        if self._updater is None:
            raise UpdateError("call refresh() first: no verified metadata yet")

    def _trusted(self, target_path: str) -> ModelRelease:
        self._require_refresh()
        assert self._updater is not None
        try:
            target = self._updater.get_targetinfo(target_path)
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            raise UpdateError(f"looking up {target_path}: {describe_tuf_error(exc)}") from exc
        release = release_of(target) if target is not None else None
        if release is None:
            raise UpdateError(f"{target_path} is not a model target in signed metadata")
        return release


def clean_downloads(download_dir: Path, installed: set[str], *, partials: bool = False) -> int:
    """Delete downloads that are of no more use; returns how many files went.

    A finished download (``H.F``) goes once a blob with sha256 ``H`` is in the store (the store
    keeps its own copy); partial downloads (``H.F.part`` and its journal) go only when
    ``partials`` says every followed model is up to date, so nothing left could resume them.
    Without this the download directory kept every model ever delivered and the partials of
    superseded releases until the disk filled.
    """
    if not download_dir.is_dir():
        return 0
    removed = 0
    for path in download_dir.iterdir():
        if not path.is_file():
            continue
        partial = path.name.endswith((".part", ".part.json"))
        sha256 = path.name.split(".", 1)[0]
        if (partial and partials) or (not partial and sha256 in installed):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
