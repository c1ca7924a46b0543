"""Drift episodes of simulated devices, judged by the agent's own drift detector.

A simulated device has no camera, so its inputs are synthetic frames: small grey images
whose brightness varies from frame to frame around a scene level. During an episode (a
stretch of simulated time, drawn per device) every frame is ``shift`` brighter, like a
camera whose lighting changed. Each window of frames is profiled and scored by
:class:`edge_agent.telemetry.drift.DriftDetector` against a reference built from clean frames,
with the agent's default thresholds and hysteresis, so the reports, alarm transitions and
window profiles on the wire are what a real agent would send for such a camera.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.config import DriftSettings
from edge_agent.errors import ConfigError
from edge_agent.telemetry.drift import DriftDetector
from edge_agent.telemetry.profile import Profile, build_profile

FRAME_PX = 16
REFERENCE_FRAMES = 2000


@dataclass(frozen=True)
class DriftEpisodes:
    """Which simulated devices drift, when and how much (simulated seconds)."""

    fraction: float = 0.0
    """Share of devices that have an episode (spread over the fleet)."""
    start_s: tuple[float, float] = (600.0, 3600.0)
    """The episode starts this long after the simulation starts (drawn per device)."""
    duration_s: float = 1800.0
    shift: float = 0.25
    """Brightness added to every frame during the episode (frames are in [0, 1])."""
    window: int = 200
    """Frames per drift window."""
    every_reports: int = 2
    """A window closes every this many telemetry reports."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError("simulator drift fraction must be in [0, 1]")
        if self.window < 10 or self.every_reports < 1 or self.duration_s <= 0:
            raise ConfigError(
                "simulator drift window must be >= 10, every_reports >= 1, duration_s > 0"
            )
        low, high = self.start_s
        if not 0.0 <= low <= high:
            raise ConfigError("simulator drift start_s must be a (low, high) range, low >= 0")


def synthetic_frames(rng: np.random.Generator, count: int, shift: float = 0.0) -> np.ndarray:
    """``count`` grey frames in [0, 1]: a scene level per frame, texture, plus ``shift``."""
    level = rng.uniform(0.3, 0.6, (count, 1, 1))
    texture = rng.normal(0.0, 0.08, (count, FRAME_PX, FRAME_PX))
    return np.clip(level + texture + shift, 0.0, 1.0).astype(np.float32)


def synthetic_reference(seed: int = 0) -> Profile:
    """The reference profile of clean synthetic frames (shared by a simulated fleet)."""
    frames = synthetic_frames(np.random.default_rng(seed), REFERENCE_FRAMES)
    return build_profile(frames, None, layout="hw", meta={"model": "simulated camera"})


@dataclass
class DriftState:
    """One device's episode and detector."""

    episode: tuple[float, float] | None
    """Simulated (start, end) unix seconds of the episode; None: this device does not drift."""
    detector: DriftDetector
    rng: np.random.Generator
    windows: int = 0

    def drifting(self, sim_time: float) -> bool:
        """Whether ``sim_time`` is inside the episode."""
        return self.episode is not None and self.episode[0] <= sim_time < self.episode[1]


def new_drift_state(
    rng: random.Random,
    episodes: DriftEpisodes,
    reference: Profile,
    sim_start: float,
    has_episode: bool,
    settings: DriftSettings | None = None,
) -> DriftState:
    """A device's drift state: its episode (when it has one) and a fresh detector."""
    episode = None
    if has_episode:
        start = sim_start + rng.uniform(*episodes.start_s)
        episode = (start, start + episodes.duration_s)
    return DriftState(
        episode,
        DriftDetector(reference, settings or DriftSettings()),
        np.random.default_rng(rng.getrandbits(32)),
    )


def drift_window(
    state: DriftState, model: str, sim_time: float, episodes: DriftEpisodes
) -> dict[str, Any]:
    """Profile and score one window of frames; the report ``WindowResult.report`` gives."""
    shift = episodes.shift if state.drifting(sim_time) else 0.0
    frames = synthetic_frames(state.rng, episodes.window, shift)
    result = state.detector.evaluate_batch(frames, None)
    state.windows += 1
    return result.report(model, state.windows, 0)
