"""The pipeline on camera-like video (H.264, 720p and 1080p, file and RTSP) against a hand loop.

The clip is made at run time (tests/fixtures/camera.py): scikit-image's photographs panned and
zoomed, 30 fps, libx264 without B-frames and a keyframe a second, as an IP camera sends it.
The baseline is a hand-written OpenCV loop on the raw runtime, single-threaded: read (decode),
``cv2.resize`` into a buffer, BGR -> RGB, scale, ``set_tensor``/``invoke``/``get_tensor``,
argmax (``HandModel``/``hand_loop`` there). Against it, per frame size:

* ``file``: the real pipeline on the file (``video`` source, FFmpeg decoding on the source's
  reader thread, preprocessing into the input tensor, ``ServedModel.run``, classification
  top-1 with labels), every frame, as fast as it goes. Target: fps >= the hand loop's.
* ``decoded``: both on the same frames decoded up front (the pipeline through an in-memory
  source), which leaves the machinery: thread hand-off, preprocessing plan, ``ServedModel``,
  postprocessing. Target: at most 3 % more time per frame than the hand loop. More rounds
  (``--decoded-rounds``), and the fastest round of each is reported next to the median: on
  a shared machine the fastest rounds are the ones the neighbours disturbed least.
* ``paced``: the pipeline on the file read at its own 30 fps (``realtime: true``): latency
  when the pipeline keeps up, as on a camera.
* ``rtsp``: a local GStreamer RTSP server streams the clip (30 fps, RTP over TCP); the hand
  loop and the pipeline each read it once; frames, drops and latency.

Decode-to-result latency runs from the moment a decoded frame exists (the pipeline's
``Frame.timestamp``; right after ``read()`` in the hand loop) to the result. In ``file`` the
pipeline's includes the wait in its queue (``queue_size`` frames), the price of decoding
ahead. Rounds of hand and pipeline alternate, medians are compared; the machine's load average
before and after is printed, since on a shared machine other work takes cores too.

Usage: python -m benchmarks.video [--model digits32/digits32_fp32.tflite] [--seconds 4]
       [--rounds 3] [--decoded-rounds 10] [--threads 1] [--sizes 720p,1080p]
       [--rtsp-sizes 720p,1080p] [--rtsp-queue-sizes 2,8]
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.pipeline import DecodedFrames  # noqa: E402
from edge_agent.config import PipelineSettings, RuntimeSettings  # noqa: E402
from edge_agent.pipeline import build_pipeline  # noqa: E402
from edge_agent.pipeline.frames import Frame  # noqa: E402
from edge_agent.pipeline.runner import Pipeline  # noqa: E402
from edge_agent.runtime import load_model  # noqa: E402
from edge_agent.serving import InferenceResult, LoadedVersion, ModelRegistry, ServedModel  # noqa: E402
from tests.fixtures.camera import (  # noqa: E402
    CameraClip,
    HandModel,
    HandResult,
    RtspServer,
    hand_loop,
    make_camera_clip,
    read_frames,
)

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
TARGET_MACHINERY_PCT = 3.0


def lag_behind_stream_ms(finished: list[tuple[int, float]], fps: float) -> float:
    """How far the results fell behind the stream's clock, at worst, from the first result.

    Result ``i`` is due ``(i - first) / fps`` seconds after the first one; a loop that cannot
    keep up falls further behind with every frame (what decode-to-result cannot show, since
    the frames wait in FFmpeg's and the socket's buffers before they are decoded).
    """
    if not finished:
        return float("nan")
    first_index, first_at = finished[0]
    return 1000.0 * max(at - first_at - (i - first_index) / fps for i, at in finished)


def percentiles_ms(latencies_s: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds."""
    if not latencies_s:
        return {"p50": float("nan"), "p99": float("nan")}
    values = 1000.0 * np.asarray(latencies_s)
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}


class Run:
    """One pipeline run: its elapsed time, latencies and counters."""

    def __init__(self, pipeline: Pipeline) -> None:
        """Attach a listener that times every result."""
        self.pipeline = pipeline
        self.latencies: list[float] = []
        self.finished: list[tuple[int, float]] = []
        pipeline.add_listener(self._result)

    def _result(self, frame: Frame, _inference: InferenceResult, _record: dict[str, Any]) -> None:
        self.latencies.append(time.time() - frame.timestamp)
        self.finished.append((int(frame.frame_id), time.perf_counter()))

    def until(
        self, done: Callable[[Pipeline], bool] | None = None, timeout_s: float = 600.0
    ) -> float:
        """Start, wait until the source is used up (or ``done``, polled), stop; seconds it ran.

        Without ``done`` the caller just joins the pipeline thread: polling would take the GIL
        from the pipeline every few milliseconds and be measured as machinery.
        """
        start = time.perf_counter()
        self.pipeline.start()
        if done is None:
            self.pipeline.wait_finished(timeout_s)
        else:
            deadline = time.monotonic() + timeout_s
            while self.pipeline.running and not done(self.pipeline) and time.monotonic() < deadline:
                time.sleep(0.05)
        elapsed = time.perf_counter() - start
        self.pipeline.stop()
        return elapsed


def _keep(into: list[HandResult], result: HandResult) -> float:
    into.append(result)
    return result.elapsed_s


def settings_for(source: dict[str, Any]) -> PipelineSettings:
    """The benchmark's pipeline: the given source, top-1 classification with labels, no sink."""
    return PipelineSettings.model_validate(
        {
            "name": "camera",
            "model": "cls",
            "source": source,
            "postprocess": {"type": "classification", "top_k": 1},
        }
    )


def summary(elapsed_s: list[float], frames: int) -> dict[str, Any]:
    """fps and ms per frame from the median round."""
    median = statistics.median(elapsed_s)
    return {
        "fps": frames / median,
        "ms_per_frame": 1000.0 * median / frames,
        "ms_per_frame_min": 1000.0 * min(elapsed_s) / frames,
        "ms_per_frame_rounds": [round(1000.0 * s / frames, 4) for s in elapsed_s],
    }


def measure_size(
    name: str,
    registry: ModelRegistry,
    hand: HandModel,
    clip: CameraClip,
    rounds: int,
    decoded_rounds: int,
    rtsp_queue_sizes: list[int],
) -> dict[str, Any]:
    """Every scenario on one clip."""
    decoded = list(read_frames(clip.path))
    n = len(decoded)
    served = registry.get("cls")
    assert served is not None
    file_settings = settings_for({"type": "video", "path": str(clip.path)})
    hand_loop(hand, decoded[:10], keep_scores=False)  # warm up
    wall: dict[str, list[float]] = {
        k: [] for k in ("hand_file", "pipe_file", "hand_dec", "pipe_dec")
    }
    cpu: dict[str, list[float]] = {k: [] for k in wall}
    hand_file_lat: list[float] = []
    pipe_file_lat: list[float] = []
    pipe_file_stats: dict[str, Any] = {}

    def timed(key: str, work: Callable[[], float]) -> None:
        cpu_start = time.process_time()
        wall[key].append(work())
        cpu[key].append(time.process_time() - cpu_start)

    hand_results: list[HandResult] = []
    for _ in range(rounds):
        timed(
            "hand_file",
            lambda: _keep(hand_results, hand_loop(hand, read_frames(clip.path), keep_scores=False)),
        )
        hand_file_lat += hand_results[-1].latencies_s
        run = Run(build_pipeline(file_settings, registry))
        timed("pipe_file", run.until)
        pipe_file_lat += run.latencies
        pipe_file_stats = run.pipeline.stats()
    for _ in range(decoded_rounds):
        timed("hand_dec", lambda: hand_loop(hand, decoded, keep_scores=False).elapsed_s)
        run = Run(Pipeline(file_settings, served, DecodedFrames(decoded)))
        timed("pipe_dec", run.until)
    hand_file, pipe_file = summary(wall["hand_file"], n), summary(wall["pipe_file"], n)
    hand_dec, pipe_dec = summary(wall["hand_dec"], n), summary(wall["pipe_dec"], n)
    for part, key in (
        (hand_file, "hand_file"),
        (pipe_file, "pipe_file"),
        (hand_dec, "hand_dec"),
        (pipe_dec, "pipe_dec"),
    ):
        part["cpu_ms_per_frame"] = 1000.0 * statistics.median(cpu[key]) / n
        part["cpu_ms_per_frame_min"] = 1000.0 * min(cpu[key]) / n
    machinery_pct = 100.0 * (pipe_dec["ms_per_frame"] / hand_dec["ms_per_frame"] - 1.0)
    out: dict[str, Any] = {
        "frame_size": [clip.width, clip.height],
        "frames": n,
        "clip_bytes": clip.path.stat().st_size,
        "file": {
            "hand_loop": {**hand_file, "decode_to_result_ms": percentiles_ms(hand_file_lat)},
            "pipeline": {
                **pipe_file,
                "decode_to_result_ms": percentiles_ms(pipe_file_lat),
                "processed": pipe_file_stats["processed"],
                "errors": pipe_file_stats["errors"],
                "queue_size": file_settings.queue_size,
            },
            "throughput_vs_hand_pct": 100.0 * (pipe_file["fps"] / hand_file["fps"] - 1.0),
            "target": "pipeline fps >= hand loop fps",
            "met": pipe_file["fps"] >= hand_file["fps"],
        },
        "decoded": {
            "hand_loop": hand_dec,
            "pipeline": pipe_dec,
            "machinery_overhead_pct": machinery_pct,
            "machinery_overhead_pct_of_fastest_rounds": 100.0
            * (pipe_dec["ms_per_frame_min"] / hand_dec["ms_per_frame_min"] - 1.0),
            "machinery_cpu_overhead_pct": 100.0
            * (pipe_dec["cpu_ms_per_frame"] / hand_dec["cpu_ms_per_frame"] - 1.0),
            "machinery_cpu_overhead_pct_of_fastest_rounds": 100.0
            * (pipe_dec["cpu_ms_per_frame_min"] / hand_dec["cpu_ms_per_frame_min"] - 1.0),
            "target_pct": TARGET_MACHINERY_PCT,
            "met": machinery_pct <= TARGET_MACHINERY_PCT,
        },
    }
    paced = Run(
        build_pipeline(
            settings_for({**file_settings.source.model_dump(), "realtime": True}), registry
        )
    )
    paced_s = paced.until()
    out["paced"] = {
        "what": f"the pipeline on the file read at its own {clip.fps} fps (realtime: true)",
        "seconds": paced_s,
        "processed": paced.pipeline.processed,
        "dropped": paced.pipeline.stats()["dropped"],
        "decode_to_result_ms": percentiles_ms(paced.latencies),
    }
    if rtsp_queue_sizes:
        out["rtsp"] = measure_rtsp(registry, hand, clip, rtsp_queue_sizes)
    print(f"{name}: done", file=sys.stderr)
    return out


def measure_rtsp(
    registry: ModelRegistry, hand: HandModel, clip: CameraClip, queue_sizes: list[int]
) -> dict[str, Any]:
    """The clip from a local RTSP server, read once by the hand loop, once per pipeline queue.

    At open, FFmpeg's probing hands over about a second of frames at once, and frames come
    in small bursts after that: a live source keeps the newest ``queue_size`` and drops the
    rest, so the queue size trades dropped frames against latency.
    """
    out: dict[str, Any] = {
        "what": f"served by GStreamer's RTSP server at {clip.fps} fps, RTP over TCP; seconds "
        "include opening the stream; lag: how far results fell behind the stream's clock",
    }
    with RtspServer(clip.path) as server:
        opened = time.perf_counter()
        result: HandResult = hand_loop(hand, read_frames(server.url), keep_scores=False)
        out["hand_loop"] = {
            "frames": len(result.classes),
            "seconds": time.perf_counter() - opened,
            "decode_to_result_ms": percentiles_ms(result.latencies_s),
            "lag_behind_stream_ms_max": lag_behind_stream_ms(
                list(enumerate(result.finished_at)), clip.fps
            ),
        }
        for queue_size in queue_sizes:
            settings = settings_for({"type": "rtsp", "url": server.url})
            settings = settings.model_copy(update={"queue_size": queue_size})
            run = Run(build_pipeline(settings, registry))
            pipe_s = run.until(
                lambda p: (
                    p.processed + p.stats()["dropped"] >= clip.frames
                    or p.stats()["source"]["stream_drops"] > 0
                ),
                timeout_s=60.0,
            )
            stats = run.pipeline.stats()
            out[f"pipeline_queue_size_{queue_size}"] = {
                "frames": stats["processed"],
                "dropped": stats["dropped"],
                "errors": stats["errors"],
                "seconds": pipe_s,
                "decode_to_result_ms": percentiles_ms(run.latencies),
                "lag_behind_stream_ms_max": lag_behind_stream_ms(run.finished, clip.fps),
            }
    return out


def main() -> None:
    """Parse arguments, make the clips, run every scenario, print JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="digits32/digits32_fp32.tflite")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--decoded-rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", default="720p,1080p")
    parser.add_argument("--rtsp-sizes", default="720p,1080p", help="'' for none")
    parser.add_argument(
        "--rtsp-queue-sizes", default="2,8", help="pipeline queue sizes on RTSP (2: the default)"
    )
    args = parser.parse_args()

    import cv2

    path = REPO / "models" / args.model
    labels_file = path.parent / "labels.txt"
    labels = labels_file.read_text().splitlines() if labels_file.is_file() else None
    load_before = os.getloadavg()
    backend = load_model(path, RuntimeSettings(threads=args.threads))
    registry = ModelRegistry()
    registry.add(
        ServedModel(
            "cls",
            LoadedVersion("cls", "1", backend, path, manifest={"labels": labels} if labels else {}),
        )
    )
    hand = HandModel(path, args.threads)
    rtsp_sizes = {s for s in args.rtsp_sizes.split(",") if s}
    queue_sizes = [int(q) for q in args.rtsp_queue_sizes.split(",") if q]
    results: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            width, height = SIZES[size]
            clip = make_camera_clip(
                Path(tmp) / f"{size}.mp4", width=width, height=height, seconds=args.seconds
            )
            results[size] = measure_size(
                size,
                registry,
                hand,
                clip,
                args.rounds,
                args.decoded_rounds,
                queue_sizes if size in rtsp_sizes else [],
            )
    backend.close()
    print(
        json.dumps(
            {
                "benchmark": "video",
                "model": args.model,
                "model_input": list(backend.inputs[0].shape),
                "delegate": backend.delegate.name,
                "threads": args.threads,
                "rounds": args.rounds,
                "decoded_rounds": args.decoded_rounds,
                "clip_seconds": args.seconds,
                "machine": {
                    "python": platform.python_version(),
                    "cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(),
                    "opencv": cv2.__version__,
                    "opencv_threads": cv2.getNumThreads(),
                    "load_average_before": [round(v, 2) for v in load_before],
                    "load_average_after": [round(v, 2) for v in os.getloadavg()],
                    "benchmark_seconds": round(time.perf_counter() - started, 1),
                },
                "sizes": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
