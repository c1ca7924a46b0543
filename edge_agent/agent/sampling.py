"""The agent's sample capture: the store on disk, the capturer on the models, the uploader.

Capture is off by default, so its modules are imported only when the config turns it on: an
agent that does not capture does not pay for them at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.config import CaptureSettings
from edge_agent.serving import ServedModel

if TYPE_CHECKING:
    from edge_agent.capture.capturer import SampleCapture
    from edge_agent.capture.store import SampleStore
    from edge_agent.capture.uploader import SampleUploader
    from edge_agent.telemetry.sensors import SensorReader
    from edge_agent.transport.budget import LinkBudget
    from edge_agent.transport.client import MqttClient


@dataclass
class Sampling:
    """Capture's running parts; ``uploader`` only with a broker."""

    settings: CaptureSettings
    samples: SampleStore
    capture: SampleCapture
    uploader: SampleUploader | None = None

    def attach(self, served: ServedModel) -> None:
        """Sample ``served`` if capture covers it (also models delivered later)."""
        wanted = self.settings.models
        if not wanted or served.name in wanted:
            self.capture.attach(served)

    def close(self) -> None:
        """Stop sampling, then uploading, then close the store."""
        self.capture.close()
        if self.uploader is not None:
            self.uploader.stop()
        self.samples.close()


def start_capture(
    settings: CaptureSettings,
    directory: Path,
    device_id: str,
    models: Iterable[ServedModel],
    mqtt: MqttClient | None,
    sensors: SensorReader,
    budget: LinkBudget | None = None,
) -> Sampling | None:
    """Start capture on ``models`` (and uploads when there is a broker); None when it is off.

    Uploads wait on the device's shared sensor reading (``only_on_mains``), the one the power
    policy and telemetry use.
    """
    if not settings.enabled:
        return None
    from edge_agent.capture.capturer import SampleCapture
    from edge_agent.capture.store import SampleStore
    from edge_agent.capture.uploader import SampleUploader

    samples = SampleStore(
        directory,
        settings.max_bytes,
        settings.max_age_s,
    )
    sampling = Sampling(settings, samples, SampleCapture(settings, samples))
    for served in models:
        sampling.attach(served)
    if mqtt is not None:
        sampling.uploader = SampleUploader(
            samples,
            mqtt,
            device_id,
            settings.upload,
            power_supplies=lambda: sensors.read().power_supplies,
            budget=budget,
        )
        sampling.uploader.start()
    return sampling
