"""A video file played like a camera (``realtime: true``) stamps frames when they are released."""

from __future__ import annotations

import numpy as np

from edge_agent.pipeline.sources import CaptureSource


class FiveFrames:
    """A capture of five tiny frames at 50 fps (the ``Capture`` protocol, injected)."""

    def __init__(self) -> None:
        self.left = 5

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left == 0:
            return False, None
        self.left -= 1
        return True, np.zeros((2, 2, 3), np.uint8)

    def get(self, prop: int) -> float:
        return 50.0 if prop == 5 else 0.0  # cv2.CAP_PROP_FPS

    def release(self) -> None:
        pass


def test_paced_frames_are_timestamped_after_their_wait_not_when_decoded_ahead() -> None:
    """Regression: the timestamp was taken before the pacing wait, so decode-to-result of a
    realtime file counted up to a frame interval the frame spent waiting for its time."""
    source = CaptureSource(
        "paced",
        FiveFrames,
        live=True,
        queue_size=8,
        retry_open=False,
        pace_to_file_fps=True,
    )
    source.start()
    frames = []
    while len(frames) < 5:
        frame = source.read(2.0)
        assert frame is not None
        frames.append(frame)
    source.stop()
    gaps = np.diff([f.timestamp for f in frames])
    assert gaps.min() >= 0.015, gaps  # 50 fps: each frame stamped about 20 ms after the last
