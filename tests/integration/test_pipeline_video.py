"""Video-file pipelines end to end: real FFmpeg decoding, real runtimes, the digits32 model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.config import PipelineSettings
from edge_agent.pipeline import build_pipeline
from edge_agent.runtime import load_model
from edge_agent.serving import LoadedVersion, ModelRegistry, ServedModel
from tests.fixtures.video import make_digits_video

MODELS = Path(__file__).resolve().parent.parent.parent / "models" / "digits32"


def registry_with(file: str) -> ModelRegistry:
    path = MODELS / file
    registry = ModelRegistry()
    registry.add(ServedModel("digits32", LoadedVersion("digits32", "1", load_model(path), path)))
    return registry


def settings(video: Path, out: Path, **extra) -> PipelineSettings:
    return PipelineSettings.model_validate(
        {
            "name": "digits-video",
            "model": "digits32",
            "source": {"type": "video", "path": str(video), **extra.pop("source", {})},
            "postprocess": {"type": "classification", "labels_file": str(MODELS / "labels.txt")},
            "sinks": [{"type": "jsonl", "path": str(out)}],
            **extra,
        }
    )


@pytest.mark.parametrize(
    "model_file", ["digits32_fp32.tflite", "digits32_int8.onnx", "digits32_int8.tflite"]
)
def test_every_frame_is_classified_as_the_digit_it_shows(tmp_path, model_file):
    video = make_digits_video(tmp_path / "digits.avi", count=80)
    out = tmp_path / "results.jsonl"
    pipeline = build_pipeline(settings(video.path, out), registry_with(model_file))
    pipeline.start()
    assert pipeline.wait_finished(60)
    pipeline.stop()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == [str(i) for i in range(80)]
    predicted = [int(r["result"]["top"][0]["label"]) for r in records]
    assert predicted == video.labels  # digits32 gets all of these test digits right
    stats = pipeline.stats()
    assert (stats["frames_in"], stats["processed"], stats["dropped"], stats["errors"]) == (
        80,
        80,
        0,
        0,
    )
    assert records[0]["model"] == "digits32" and records[0]["version"] == "1"


def test_realtime_playback_with_a_frame_cap_skips_frames(tmp_path):
    video = make_digits_video(tmp_path / "digits.avi", count=50, fps=100.0)
    pipeline = build_pipeline(
        settings(video.path, tmp_path / "r.jsonl", source={"realtime": True}, max_fps=20),
        registry_with("digits32_int8.tflite"),
    )
    pipeline.start()
    assert pipeline.wait_finished(30)
    pipeline.stop()
    source = pipeline.stats()["source"]
    # 0.5 s of video at 100 fps capped at 20 fps: about 10 frames go through, the rest skipped.
    assert source["frames_read"] == 50
    assert 5 <= pipeline.processed <= 15
    assert source["skipped"] + source["dropped"] + pipeline.processed == 50


def test_loop_plays_the_file_again(tmp_path):
    video = make_digits_video(tmp_path / "digits.avi", count=10)
    pipeline = build_pipeline(
        settings(video.path, tmp_path / "r.jsonl", source={"loop": True}),
        registry_with("digits32_int8.tflite"),
    )
    pipeline.start()
    try:
        deadline = 200
        while pipeline.processed < 25 and deadline:
            pipeline.wait_finished(0.05)
            deadline -= 1
        assert pipeline.processed >= 25 and pipeline.running
    finally:
        pipeline.stop()
    assert pipeline.stats()["source"]["reconnects"] >= 2  # reopened at each end


def test_a_missing_or_corrupt_video_finishes_with_an_error_instead_of_hanging(tmp_path):
    (tmp_path / "broken.avi").write_bytes(b"RIFF\x00\x00garbage" * 100)
    for path in (tmp_path / "missing.avi", tmp_path / "broken.avi"):
        pipeline = build_pipeline(
            settings(path, tmp_path / "r.jsonl"), registry_with("digits32_int8.tflite")
        )
        pipeline.start()
        assert pipeline.wait_finished(20)
        pipeline.stop()
        stats = pipeline.stats()
        assert stats["processed"] == 0
        assert "cannot open" in stats["source"]["last_error"]
