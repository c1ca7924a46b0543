"""The agent's pipelines: each starts once its model is served, and reports its progress.

A pipeline whose model is not served yet (a model the registry has not delivered) waits and
starts when the model arrives. Every started pipeline takes part in the watchdog decision
through the progress function it is registered with. The pipeline modules (sources, sinks) are
imported only when a pipeline starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from edge_agent.config import PipelineSettings
from edge_agent.serving import ModelRegistry

if TYPE_CHECKING:
    from edge_agent.pipeline.runner import Pipeline
    from edge_agent.transport.client import MqttClient

log = logging.getLogger(__name__)

Progress = Callable[[], float]
"""Returns the monotonic time of a component's last progress (pipelines register these)."""


class Pipelines:
    """The configured pipelines, started as their models become available."""

    def __init__(
        self,
        settings: Sequence[PipelineSettings],
        models: ModelRegistry,
        *,
        device_id: str,
        register_progress: Callable[[str, Progress], None],
        forget_progress: Callable[[str], None] = lambda name: None,
    ) -> None:
        self.settings = list(settings)
        self.running: list[Pipeline] = []
        """Replaced, never changed in place, so readers on other threads see a whole list."""
        self._models = models
        self._device_id = device_id
        self._register_progress = register_progress
        self._forget_progress = forget_progress
        self._started: set[str] = set()
        self._fps: float | None = None
        self._lock = threading.RLock()  # reload (main thread) vs. a delivered model's start

    def start_ready(self, client: MqttClient | None) -> None:
        """Start every pipeline whose model is served; the others start when it arrives."""
        with self._lock:
            self._start_ready(client)

    def stop_named(self, names: Collection[str]) -> None:
        """Stop the named pipelines (a reload removed or changed them); they start no more."""
        with self._lock:
            for pipeline in [p for p in self.running if p.name in names]:
                pipeline.stop()
                self._forget_progress(f"pipeline:{pipeline.name}")
                log.info("pipeline %s stopped (reload)", pipeline.name)
            self.running = [p for p in self.running if p.name not in names]
            self.settings = [s for s in self.settings if s.name not in names]
            self._started -= set(names)

    def replace(self, settings: Sequence[PipelineSettings], client: MqttClient | None) -> None:
        """Take a reloaded config's pipelines and start those not running whose model is served."""
        with self._lock:
            self.settings = list(settings)
            self._start_ready(client)

    def _start_ready(self, client: MqttClient | None) -> None:
        for settings in self.settings:
            if not settings.enabled or settings.name in self._started:
                continue
            if self._models.get(settings.model) is None:
                log.info("pipeline %s waits for model %s", settings.name, settings.model)
                continue
            from edge_agent.pipeline.runner import build_pipeline

            pipeline = build_pipeline(
                settings, self._models, device_id=self._device_id, client=client
            )
            self._apply(pipeline)
            pipeline.start()
            self.running = [*self.running, pipeline]
            self._started.add(settings.name)
            self._register_progress(f"pipeline:{pipeline.name}", progress_of(pipeline))
            log.info(
                "pipeline %s started (%s -> %s)",
                pipeline.name,
                settings.source.type,
                settings.model,
            )

    def pace(self, fps: float | None) -> None:
        """Pace every pipeline to ``fps`` (the power policy's; None: unlimited).

        The policy's light variant is not chosen here: it is swapped in for the pipelines'
        models through the swap gates (:mod:`edge_agent.agent.power`).
        """
        self._fps = fps
        for pipeline in self.running:
            self._apply(pipeline)

    def models(self) -> set[str]:
        """The models the running pipelines use."""
        return {pipeline.served.name for pipeline in self.running}

    def _apply(self, pipeline: Pipeline) -> None:
        pipeline.set_rate(self._fps)

    def stats(self) -> list[dict[str, Any]]:
        """Each running pipeline's counters (for the status document)."""
        return [pipeline.stats() for pipeline in self.running]

    def stop(self) -> None:
        """Stop every running pipeline."""
        for pipeline in self.running:
            pipeline.stop()


def progress_of(pipeline: Pipeline) -> Progress:
    """When ``pipeline`` last made progress.

    A finished finite source (a video file that ended) is not a stuck pipeline: it counts as
    progressing now.
    """

    def last_progress() -> float:
        return pipeline.last_progress if pipeline.running else time.monotonic()

    return last_progress
