"""Camera-like video through the real pipeline: 720p H.264 from a file and from an RTSP server.

The clip is made at test time (tests/fixtures/camera.py: scikit-image photographs panned and
zoomed, libx264). The baseline is a hand-written OpenCV loop on the raw runtime (read, resize,
invoke, argmax): the pipeline, with its own decoding thread, its preprocessing into the input
tensor and ``ServedModel.run``, must give the same scores for every frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.config import PipelineSettings
from edge_agent.pipeline import build_pipeline
from edge_agent.pipeline.frames import Frame
from edge_agent.runtime import load_model
from edge_agent.serving import InferenceResult, LoadedVersion, ModelRegistry, ServedModel
from tests.fixtures.camera import (
    CameraClip,
    HandModel,
    RtspServer,
    hand_loop,
    make_camera_clip,
    read_frames,
)

MODEL = (
    Path(__file__).resolve().parent.parent.parent / "models" / "digits32" / "digits32_fp32.tflite"
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> CameraClip:
    """One second of 1280x720 H.264 at 30 fps."""
    return make_camera_clip(
        tmp_path_factory.mktemp("camera") / "clip.mp4", seconds=1.0, preset="ultrafast"
    )


def run_pipeline(source: dict[str, Any], frames: int) -> dict[str, np.ndarray]:
    """Scores per frame id from the real pipeline, until ``frames`` came or 30 s passed."""
    registry = ModelRegistry()
    registry.add(ServedModel("cls", LoadedVersion("cls", "1", load_model(MODEL), MODEL)))
    settings = PipelineSettings.model_validate(
        {
            "name": "camera",
            "model": "cls",
            "source": source,
            "postprocess": {"type": "classification", "top_k": 1},
            "queue_size": 64,  # a live source must not drop any of the frames compared here
        }
    )
    pipeline = build_pipeline(settings, registry)
    scores: dict[str, np.ndarray] = {}

    def keep(frame: Frame, inference: InferenceResult, _record: dict[str, Any]) -> None:
        scores[frame.frame_id] = next(iter(inference.outputs.values())).copy()

    pipeline.add_listener(keep)
    pipeline.start()
    deadline = time.monotonic() + 30
    while len(scores) < frames and time.monotonic() < deadline and pipeline.running:
        time.sleep(0.05)
    pipeline.stop()
    assert pipeline.stats()["errors"] == 0
    return scores


def assert_same_as_hand_loop(clip: CameraClip, scores: dict[str, np.ndarray]) -> None:
    hand = hand_loop(HandModel(MODEL), read_frames(clip.path))
    assert len(hand.classes) == clip.frames
    assert sorted(scores, key=int) == [str(i) for i in range(clip.frames)]
    for index, expected in enumerate(hand.scores):
        got = scores[str(index)]
        assert int(np.argmax(got)) == hand.classes[index], f"frame {index}"
        np.testing.assert_array_equal(got, expected, err_msg=f"frame {index}")


def test_720p_h264_file_through_the_pipeline_matches_a_hand_written_opencv_loop(
    clip: CameraClip,
) -> None:
    scores = run_pipeline({"type": "video", "path": str(clip.path)}, clip.frames)
    assert_same_as_hand_loop(clip, scores)


def test_720p_h264_over_rtsp_from_a_local_server_reaches_the_pipeline_frame_for_frame(
    clip: CameraClip,
) -> None:
    """A real RTSP server (GStreamer) streams the clip; every frame is decoded and classified."""
    with RtspServer(clip.path) as server:
        scores = run_pipeline({"type": "rtsp", "url": server.url}, clip.frames)
    assert_same_as_hand_loop(clip, scores)
