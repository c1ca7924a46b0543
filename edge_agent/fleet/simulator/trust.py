"""Real TUF work for simulated devices: one trust state per group of devices.

Each :class:`TrustGroup` is a real device trust state (a metadata directory provisioned with the
repository's ``root.json``) that refreshes timestamp -> snapshot -> targets -> rollouts through
the real registry over MQTT with ngclient, fetches and verifies ``rollouts/<group>.json``, and
downloads each model release it is told to install (chunked, resumable, length + sha256
verified against signed metadata), once per release. The devices of a group share that work:
they are in the same trust state, so verifying the same bytes again per device would only
repeat identical computations. A group of one device is a fully independent device.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.config import FetchSettings
from edge_agent.delivery.following import fetch_rollout
from edge_agent.delivery.rollout_document import RolloutDocument
from edge_agent.errors import UpdateError
from edge_agent.transport.client import MqttClient
from edge_agent.trust.device.client import DeviceUpdater, provision
from edge_agent.trust.device.link import RegistryLink


@dataclass
class TrustCounters:
    """Real TUF work done (reported by the simulator and the benchmark)."""

    refreshes: int = 0
    documents: int = 0
    downloads: int = 0
    download_bytes: int = 0
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        """Thread-safe increment."""
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, int]:
        """JSON-able."""
        with self.lock:
            return {
                "refreshes": self.refreshes,
                "documents": self.documents,
                "downloads": self.downloads,
                "download_bytes": self.download_bytes,
                "failures": self.failures,
            }


@dataclass
class Verified:
    """What one refresh verified: the rollout document and the signed releases of the model."""

    document: RolloutDocument | None
    releases: dict[int, str] = field(default_factory=dict)
    """release -> target path, for the simulated model."""


class TrustGroup:
    """A real trust state shared by ``members`` (device ids), speaking as ``leader``."""

    def __init__(
        self,
        leader: str,
        members: list[str],
        client: MqttClient,
        workdir: Path,
        root_json: Path,
        settings: FetchSettings,
        counters: TrustCounters,
    ) -> None:
        self.leader = leader
        self.members = members
        self.client = client
        self.settings = settings
        self.counters = counters
        self.metadata_dir = workdir / leader / "metadata"
        self.download_dir = workdir / leader / "downloads"
        provision(self.metadata_dir, root_json)
        self.link = RegistryLink(client, leader)
        self._verified_files: dict[int, Path] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop listening for registry answers."""
        self.link.close()

    def _updater(self) -> DeviceUpdater:
        return DeviceUpdater(
            self.metadata_dir,
            self.client,
            self.leader,
            self.download_dir,
            self.settings,
            link=self.link,
        )

    def refresh(self, model: str, group: str) -> Verified:
        """Refresh signed metadata and read the group's rollout document (both verified)."""
        with self._lock, self._updater() as updater:
            try:
                updater.refresh()
                self._count("refreshes")
                document = fetch_rollout(updater, group)
                if document is not None:
                    self._count("documents")
                releases = {r.release: r.target_path for r in updater.releases() if r.name == model}
            except UpdateError:
                self._count("failures")
                raise
        return Verified(document, releases)

    def ensure_downloaded(self, model: str, release: int) -> Path:
        """The verified file of ``release`` (downloaded through the registry the first time)."""
        with self._lock:
            cached = self._verified_files.get(release)
            if cached is not None and cached.exists():
                return cached
            with self._updater() as updater:
                try:
                    updater.refresh()
                    self._count("refreshes")
                    wanted = [r for r in updater.releases() if r.name == model]
                    match = [r for r in wanted if r.release == release]
                    if not match:
                        raise UpdateError(f"{model} release {release} is not signed")
                    path, trusted = updater.download(match[0])
                except UpdateError:
                    self._count("failures")
                    raise
            self._count("downloads")
            self.counters.add("download_bytes", trusted.length)
            self._verified_files[release] = path
            return path

    def discard_files(self) -> None:
        """Delete downloaded models (the simulator does not keep 1,000 copies)."""
        shutil.rmtree(self.download_dir, ignore_errors=True)
        self._verified_files.clear()

    def _count(self, name: str) -> None:
        self.counters.add(name)
