"""The sample models and a sample video, for the demo and the tests.

The models are the committed ones in ``models/`` (a wheel carries them as
``edge_agent/_samples``). The video is made on the spot from the digits test split, because
a frame per test digit with a known label is worth more than any stock clip: every prediction
the demo prints can be checked. Frames: the 8x8 digit upscaled bilinearly to 32x32 (what
digits32 was trained on), then by 3 with nearest neighbour to 96x96 so the pipeline has to
resize, written losslessly (FFV1) so decoding gives back the exact pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent.parent
_CANDIDATES = (_PACKAGE / "_samples", _PACKAGE.parent / "models")


def samples_dir() -> Path:
    """Where the sample models are (installed wheel or source checkout)."""
    for candidate in _CANDIDATES:
        if (candidate / "digits" / "test_set.npz").exists():
            return candidate
    raise ConfigError(
        "the sample models are missing: reinstall edge-agent or run from a "
        "checkout that has models/"
    )


@dataclass(frozen=True)
class DigitsVideo:
    """A video file of digits and the digit shown in each frame."""

    path: Path
    labels: list[int]
    fps: float
    size: int


def digit_frames(
    count: int, size: int = 96, start: int = 0, brightness: int = 0
) -> tuple[list[np.ndarray], list[int]]:
    """``count`` BGR uint8 frames (size x size) of test digits, and their labels.

    ``brightness`` is added to every pixel (clipped): the same digits under other lighting,
    which is how the demo makes a drift episode.
    """
    import cv2

    with np.load(samples_dir() / "digits" / "test_set.npz") as data:
        x, y = data["x"], data["y"]
    frames, labels = [], []
    for i in range(start, start + count):
        pixels = np.clip(np.rint(x[i % len(x), :, :, 0] * 255.0) + brightness, 0, 255)
        pixels = pixels.astype(np.uint8)
        up = cv2.resize(pixels, (32, 32), interpolation=cv2.INTER_LINEAR)
        big = cv2.resize(up, (size, size), interpolation=cv2.INTER_NEAREST)
        frames.append(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR))
        labels.append(int(y[i % len(y)]))
    return frames, labels


def make_digits_video(
    path: Path,
    count: int = 60,
    fps: float = 25.0,
    size: int = 96,
    start: int = 0,
    brightness: int = 0,
) -> DigitsVideo:
    """Write ``count`` digit frames to ``path`` (.avi or .mkv, FFV1 lossless)."""
    import cv2

    frames, labels = digit_frames(count, size, start, brightness)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"FFV1"), fps, (size, size))
    if not writer.isOpened():
        raise ConfigError(f"OpenCV cannot write FFV1 video to {path}")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return DigitsVideo(path, labels, fps, size)
