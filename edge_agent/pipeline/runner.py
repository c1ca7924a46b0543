"""A pipeline: source -> preprocess -> ``ServedModel.run`` -> postprocess -> sinks, on a thread.

One thread per pipeline takes frames from its source and does everything else in line; the
source has its own reader thread (or MQTT's network thread), so decoding overlaps inference and
a live source drops the oldest frame when inference falls behind.

Counters (:meth:`Pipeline.stats`): frames in, processed, dropped (by the source queue), errors
(preprocess, inference or postprocess failed: the frame is skipped, the pipeline carries on),
sink errors, and ``last_progress``, the monotonic time the loop last finished a frame or
found its source idle. The daemon's systemd watchdog pings only while every pipeline's
``last_progress`` keeps advancing: a loop stuck in a hung delegate stops the pings, an idle
camera does not.

Preprocessing and postprocessing are built from the *active* model version and rebuilt when a
hot swap changes it (an identity check per frame). A frame that raced a swap and no longer
fits is counted as an error, never fails the pipeline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.config import (
    FolderSource,
    MqttSource,
    PipelineSettings,
)
from edge_agent.errors import ConfigError, InputError
from edge_agent.pipeline.folder_source import FolderSource as FolderWatcher
from edge_agent.pipeline.frames import Frame, RateLimiter
from edge_agent.pipeline.mqtt_source import MqttTensorSource
from edge_agent.pipeline.postprocess import Postprocessor, build_postprocessor
from edge_agent.pipeline.preprocess import (
    Geometry,
    ImagePreprocessor,
    TensorPreprocessor,
    resolve_plan,
)
from edge_agent.pipeline.sinks import Sink, build_sink, encode_result
from edge_agent.pipeline.sources import Source, build_capture_source
from edge_agent.serving import InferenceResult, LoadedVersion, ModelRegistry, ServedModel
from edge_agent.transport.client import MqttClient

log = logging.getLogger(__name__)

ResultListener = Callable[[Frame, InferenceResult, dict[str, Any]], None]


@dataclass
class _Prepared:
    version: LoadedVersion
    image: ImagePreprocessor | None
    tensor: TensorPreprocessor
    post: Postprocessor


class Pipeline:
    """Runs one configured pipeline on its own thread."""

    def __init__(
        self,
        settings: PipelineSettings,
        served: ServedModel,
        source: Source,
        sinks: Sequence[Sink] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wire the parts; nothing runs before :meth:`start`."""
        self.settings = settings
        self.name = settings.name
        self.served = served
        self.source = source
        self.sinks = list(sinks)
        self._clock = clock
        self._listeners: list[ResultListener] = []
        self._prepared: _Prepared | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_in = 0
        self.processed = 0
        self.errors = 0
        self.sink_errors = 0
        self.last_error = ""
        self.last_progress = clock()
        self.last_frame_at: float | None = None
        self.started_at: float | None = None
        self.target_fps: float | None = None
        """The power policy's frame rate (None: as fast as frames come)."""
        self._pace = RateLimiter(None)

    def set_rate(self, fps: float | None) -> None:
        """Process at most ``fps`` frames a second from now on (None: no limit).

        The pipeline waits before it takes the next frame, so a live source keeps only its
        newest frames (drop-oldest) and a file is read more slowly; nothing is decoded or run
        for frames that would be thrown away.
        """
        if fps != self.target_fps:
            self.target_fps = fps
            self._pace = RateLimiter(fps)  # one assignment: the loop picks it up atomically

    def add_listener(self, listener: ResultListener) -> None:
        """Call ``listener(frame, inference, result)`` after each processed frame (same thread)."""
        self._listeners.append(listener)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Build pre/postprocessing for the active model, start the source and the thread.

        Raises InputError / ConfigError when the model does not fit the configured processing,
        so a misconfigured pipeline fails at start-up, not on the first frame.
        """
        if self._thread is not None:
            return
        self._prepare(self.served.active)
        self.source.start()
        self.started_at = self._clock()
        self.last_progress = self.started_at
        self._thread = threading.Thread(target=self._run, name=f"pipeline-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the source, let the frame in hand finish, close the sinks."""
        self._stop.set()
        self.source.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning(
                    "pipeline %s: still busy after %.0f s; leaving it", self.name, timeout_s
                )
            self._thread = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("pipeline %s: closing a sink failed", self.name)

    def wait_finished(self, timeout_s: float) -> bool:
        """Wait until a finite source (a video file) is used up; True when it was."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    @property
    def running(self) -> bool:
        """Whether the pipeline thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        """Counters of the pipeline, its source and its sinks (JSON-able)."""
        source = self.source.stats()
        now = self._clock()
        elapsed = now - self.started_at if self.started_at is not None else 0.0
        return {
            "name": self.name,
            "model": self.served.name,
            "running": self.running,
            "frames_in": self.frames_in,
            "processed": self.processed,
            "dropped": int(source.get("dropped", 0)),
            "errors": self.errors,
            "sink_errors": self.sink_errors,
            "last_error": self.last_error,
            "last_progress_age_s": now - self.last_progress,
            "fps": self.processed / elapsed if elapsed > 0 else 0.0,
            "target_fps": self.target_fps,
            "source": source,
            "sinks": [sink.stats() for sink in self.sinks],
        }

    # -- the loop --------------------------------------------------------------------------

    def _prepare(self, version: LoadedVersion) -> _Prepared:
        manifest = version.manifest or {}
        image = None
        if not isinstance(self.settings.source, MqttSource):
            if len(version.inputs) != 1:
                raise InputError(
                    f"pipeline {self.name}: image sources need a model with one input; "
                    f"{self.served.name} v{version.version} has {len(version.inputs)}"
                )
            plan = resolve_plan(
                self.settings.preprocess, version.inputs[0], manifest.get("preprocessing")
            )
            image = ImagePreprocessor(plan)
        post = build_postprocessor(self.settings.postprocess, version.outputs, manifest)
        self._prepared = _Prepared(version, image, TensorPreprocessor(version.inputs), post)
        return self._prepared

    def _run(self) -> None:
        while not self._stop.is_set():
            delay = self._pace.wait_s(self._clock())
            if delay > 0.0 and self._stop.wait(delay):
                break
            frame = self.source.read(0.2)
            self.last_progress = self._clock()
            if frame is None:
                if self.source.finished:
                    break
                continue
            self.frames_in += 1
            self._handle(frame)
            self.last_progress = self._clock()
        log.info(
            "pipeline %s: stopped after %d frames (%d errors)",
            self.name,
            self.processed,
            self.errors,
        )

    def _handle(self, frame: Frame) -> None:
        done = getattr(self.source, "done", None)
        served = self.served
        try:
            prepared = self._prepared
            active = served.active
            if prepared is None or prepared.version is not active:
                prepared = self._prepare(active)
            geometry: Geometry | None = None
            if isinstance(frame.data, dict):
                inputs = prepared.tensor(frame.data)
            elif prepared.image is not None:
                inputs, geometry = prepared.image(frame.data)
            else:
                raise InputError("this pipeline takes tensors, not images")
            inference = served.run(inputs)
            result = prepared.post(inference.outputs, geometry)
        except Exception as exc:
            self.errors += 1
            self.last_error = f"frame {frame.frame_id}: {exc}"
            if self.errors == 1 or self.errors % 100 == 0:
                log.warning(
                    "pipeline %s: %s (%d errors so far)", self.name, self.last_error, self.errors
                )
            if done is not None:
                done(frame, False)
            return
        self.processed += 1
        self.last_frame_at = frame.timestamp
        record = {
            "pipeline": self.name,
            "model": served.name,
            "version": inference.version,
            "delegate": inference.delegate,
            "frame": frame.frame_id,
            "time": frame.timestamp,
            "latency_ms": round(inference.latency_s * 1000.0, 4),
            "result": result,
        }
        if self.sinks:
            encoded = encode_result(record)
            for sink in self.sinks:
                try:
                    sink.write(encoded)
                except Exception as exc:
                    self.sink_errors += 1
                    self.last_error = f"sink {type(sink).__name__}: {exc}"
        if done is not None:
            done(frame, True)
        for listener in self._listeners:
            try:
                listener(frame, inference, record)
            except Exception:
                log.exception("pipeline %s: result listener failed", self.name)


def build_source(settings: PipelineSettings, client: MqttClient | None) -> Source:
    """The source a pipeline config describes."""
    source = settings.source
    if isinstance(source, FolderSource):
        return FolderWatcher(settings.name, source, settings.queue_size)
    if isinstance(source, MqttSource):
        if client is None:
            raise ConfigError(
                f"pipeline {settings.name}: an `mqtt` source needs `broker:` in the agent config"
            )
        return MqttTensorSource(settings.name, source, client, settings.queue_size)
    return build_capture_source(settings.name, source, settings.queue_size, settings.max_fps)


def build_pipeline(
    settings: PipelineSettings,
    registry: ModelRegistry,
    *,
    device_id: str | None = None,
    client: MqttClient | None = None,
) -> Pipeline:
    """A ready-to-start pipeline from config; ConfigError names what is missing."""
    served = registry.get(settings.model)
    if served is None:
        known = ", ".join(registry.names()) or "none"
        raise ConfigError(
            f"pipeline {settings.name}: no served model named "
            f"'{settings.model}' (served: {known}); add it under `models:`"
        )
    sinks = [
        build_sink(s, settings.name, device_id=device_id, client=client) for s in settings.sinks
    ]
    try:
        source = build_source(settings, client)
    except Exception:
        for sink in sinks:
            sink.close()
        raise
    return Pipeline(settings, served, source, sinks)
