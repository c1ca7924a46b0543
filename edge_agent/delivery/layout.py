"""The agent's state directory: every path under ``store_dir``, owned by one object.

::

    <store_dir>/
      models/            the model store (ModelStore: state.json, blobs/)
      trust/metadata/    the registry's signed TUF metadata (root.json provisioned once)
      trust/downloads/   partial downloads and their journals (resumed after a crash)
      samples/           captured samples, unless ``capture.dir`` puts them elsewhere
      outbox.db          the telemetry store-and-forward queue (SQLite in WAL mode)

The agent and ``edge-agent models`` take their paths from here, so a store filled by
``models pull --store-dir`` is the one the agent serves from. (They used to disagree: the
command put ``trust/`` inside the model store, the agent beside it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import AgentConfig, CaptureSettings
from edge_agent.delivery.store import is_model_store
from edge_agent.errors import ConfigError

__all__ = ["StoreLayout"]


@dataclass(frozen=True)
class StoreLayout:
    """The paths under one agent's ``store_dir`` (nothing is created by asking)."""

    root: Path
    """The agent's ``store_dir``."""

    @classmethod
    def default(cls) -> StoreLayout:
        """The layout under the config's default ``store_dir`` (``/var/lib/edge-agent``)."""
        return cls(AgentConfig.field_default("store_dir"))

    @property
    def models(self) -> Path:
        """The model store (``ModelStore``'s root)."""
        return self.root / "models"

    @property
    def trust(self) -> Path:
        """Everything the TUF client keeps: metadata and downloads."""
        return self.root / "trust"

    @property
    def trust_metadata(self) -> Path:
        """Signed metadata of the registry (``root.json`` is provisioned here once)."""
        return self.trust / "metadata"

    @property
    def trust_downloads(self) -> Path:
        """Partial downloads and their journals, so an interrupted download resumes."""
        return self.trust / "downloads"

    @property
    def samples(self) -> Path:
        """The default sample store of capture."""
        return self.root / "samples"

    @property
    def outbox(self) -> Path:
        """The telemetry outbox database."""
        return self.root / "outbox.db"

    def capture_dir(self, capture: CaptureSettings) -> Path:
        """Where captured samples go: ``capture.dir`` when set, else ``samples/``."""
        return capture.dir if capture.dir is not None else self.samples

    def check(self) -> StoreLayout:
        """Refuse a ``store_dir`` that is a model store itself (the old ``--store`` meaning).

        Raises:
            ConfigError: ``root`` is the root of a model store, so models and trust metadata
                would land one level too deep.
        """
        if is_model_store(self.root) and not self.models.exists():
            raise ConfigError(
                f"{self.root} is a model store itself; give the agent's store_dir instead "
                f"(here probably {self.root.parent}): the model store is <store_dir>/models"
            )
        return self
