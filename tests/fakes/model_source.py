"""A ModelSource that serves local files: for unit tests of the update state machine.

The real source (DeviceUpdater over MQTT) is exercised by tests/integration; this one lets the
state machine's timing, cancellation and failure paths be tested without a broker.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from edge_agent.errors import UpdateError
from edge_agent.trust.device.transfer import Progress
from edge_agent.trust.targets import ModelRelease


class LocalModelSource:
    """Offers one release of one model file; can hang or fail on demand."""

    def __init__(
        self,
        cancel: threading.Event,
        model: Path,
        release: int = 1,
        hang_download: bool = False,
        fail_refresh: str = "",
    ) -> None:
        self.cancel = cancel
        self.model = model
        self.release = release
        self.hang_download = hang_download
        self.fail_refresh = fail_refresh
        self.closed = False

    def refresh(self) -> None:
        if self.fail_refresh:
            raise UpdateError(self.fail_refresh)

    def latest(self, name: str) -> ModelRelease:
        data = self.model.read_bytes()
        return ModelRelease(
            name,
            self.release,
            f"models/{name}/{self.release}/{self.model.name}",
            len(data),
            hashlib.sha256(data).hexdigest(),
            {"version": "1.0.0"},
        )

    def download(
        self,
        release: ModelRelease,
        progress: Progress | None = None,
        *,
        have: Mapping[str, Path] | None = None,
        report: Callable[[str], None] | None = None,
    ) -> tuple[Path, ModelRelease]:
        if self.hang_download:
            self.cancel.wait(30)
            raise UpdateError("download interrupted")
        return self.model, release

    def download_parts(
        self, release: ModelRelease, progress: Progress | None = None
    ) -> dict[str, tuple[Path, str]]:
        return {}  # a bare model file: no profile or evaluation travels with it

    def close(self) -> None:
        self.closed = True
