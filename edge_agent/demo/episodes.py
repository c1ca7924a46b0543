"""The demo's episodes: a drift episode on the real agent, and the power views it waits for.

Drift: each published release carries a drift profile made here the way the agent will see
its inputs: the digits of the camera's normal scene (the demo video's), through the
pipeline's own preprocessing for that model, so the int8 release's profile is in its
quantized input domain. A window is at most one loop of the video, so a clean window holds
the scene's digits in their proportions and only a changed scene drifts. The episode is the
camera's lighting changing: the looping demo video is replaced (atomically) by the same
digits ``brightness`` levels brighter; the source reopens the file at each loop, so the agent
sees the shift from its next loop on, and the original again when the episode ends.

The waits read the monitor's store: what the demo reports as shown is what reached the
dashboard (events, alerts, uploaded samples), not the agent's memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.demo.samples import DigitsVideo, digit_frames, make_digits_video

MAX_WINDOW = 100
"""Most frames per drift window (4 s of video): an alarm within seconds, not minutes."""


def drift_settings(frames: int) -> dict[str, Any]:
    """The agent's drift settings for a video of ``frames`` frames (a window per loop)."""
    window = min(frames, MAX_WINDOW)
    return {"window_size": window, "min_window": min(window, 20), "window_s": 60}


def reference_profile(model: Path, out: Path, frames: int) -> Path:
    """Write the drift reference of ``model``: its inputs for the video's digits, as served."""
    from edge_agent.config import PreprocessSettings
    from edge_agent.pipeline.preprocess import ImagePreprocessor, resolve_plan
    from edge_agent.runtime.registry import load_model
    from edge_agent.telemetry.profile import build_profile, save_profile

    backend = load_model(model)
    try:
        spec = backend.inputs[0]
    finally:
        backend.close()
    preprocess = ImagePreprocessor(resolve_plan(PreprocessSettings(), spec))
    images, _labels = digit_frames(frames)
    inputs = np.concatenate([preprocess(image)[0][spec.name] for image in images])
    save_profile(build_profile(inputs, None, meta={"model": model.name}), out)
    return out


@dataclass
class DriftEpisode:
    """Swaps the agent's looping video for a brighter one and back."""

    video: DigitsVideo
    brightness: int = 70
    frames: int = 50
    """Frames of the brighter video (short: it loops for as long as the episode lasts)."""

    def _write(self, brightness: int, count: int) -> None:
        staging = self.video.path.with_name(f".{self.video.path.stem}.next{self.video.path.suffix}")
        make_digits_video(
            staging, count=count, fps=self.video.fps, size=self.video.size, brightness=brightness
        )
        os.replace(staging, self.video.path)

    def start(self) -> None:
        """The lighting changes: the next loop of the video is brighter."""
        self._write(self.brightness, self.frames)

    def end(self) -> None:
        """The lighting is back: the original video again."""
        self._write(0, len(self.video.labels))


def events(store: Any, device: str, kind: str, since: float) -> list[dict[str, Any]]:
    """``kind`` events of ``device`` since ``since``, oldest first."""
    rows: list[dict[str, Any]] = store.rows(
        "SELECT time, state, reason FROM events WHERE device_id = ? AND kind = ? AND time >= ? "
        "ORDER BY time",
        [device, kind, since],
    )
    return rows


def alert_fired(store: Any, rule: str, device: str, since: float) -> dict[str, Any] | None:
    """The ``rule`` alert of ``device`` that fired since ``since``, if any."""
    rows = store.rows(
        "SELECT message, state FROM alerts WHERE rule = ? AND device_id = ? AND started >= ? "
        "ORDER BY started",
        [rule, device, since],
    )
    return rows[0] if rows else None


def samples_by_strategy(
    store: Any, device: str, strategy: str, since: float, at_least: int = 1
) -> int:
    """Samples of ``device`` captured by ``strategy`` in the monitor; 0 if under ``at_least``."""
    rows = store.rows(
        "SELECT COUNT(*) AS n FROM samples WHERE device_id = ? AND strategy = ? AND time >= ?",
        [device, strategy, since],
    )
    count = int(rows[0]["n"])
    return count if count >= at_least else 0


def power_cycle(store: Any, prefix: str) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """The first device (id starting with ``prefix``) that entered saving and left it again."""
    rows = store.rows(
        "SELECT device_id, time, state, reason FROM events WHERE kind = 'power_policy' "
        "ORDER BY time"
    )
    entered: dict[str, dict[str, Any]] = {}
    for row in rows:
        device = row["device_id"]
        if not device.startswith(prefix):
            continue
        if row["state"] == "saving" and device not in entered:
            entered[device] = row
        elif row["state"] == "normal" and device in entered:
            return device, entered[device], row
    return None
