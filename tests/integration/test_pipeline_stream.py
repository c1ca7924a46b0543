"""Network streams: reconnect with backoff, against a real HTTP MJPEG server we start.

No RTSP server is available here; FFmpeg reads an HTTP MJPEG stream through the same
``VideoCapture`` path (open/read timeouts, drops, reopen) that an RTSP URL takes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import pytest

from edge_agent.config import PipelineSettings
from edge_agent.pipeline import build_pipeline
from edge_agent.runtime import load_model
from edge_agent.serving import LoadedVersion, ModelRegistry, ServedModel
from tests.fixtures.mosquitto import free_port
from tests.fixtures.video import digit_frames

MODEL = (
    Path(__file__).resolve().parent.parent.parent / "models" / "digits32" / "digits32_int8.tflite"
)


class MjpegServer:
    """Serves `frames_per_connection` JPEG frames per client, then hangs up (a dropped stream)."""

    def __init__(self, frames_per_connection: int) -> None:
        frames, self.labels = digit_frames(10)
        self.jpegs = [
            cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for f in frames
        ]
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i in range(frames_per_connection):
                        jpeg = server.jpegs[i % len(server.jpegs)]
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            b"Content-Length: "
                            + str(len(jpeg)).encode()
                            + b"\r\n\r\n"
                            + jpeg
                            + b"\r\n"
                        )
                        time.sleep(0.01)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg() -> Iterator[MjpegServer]:
    server = MjpegServer(frames_per_connection=15)
    yield server
    server.close()


def registry() -> ModelRegistry:
    reg = ModelRegistry()
    reg.add(ServedModel("digits32", LoadedVersion("digits32", "1", load_model(MODEL), MODEL)))
    return reg


def stream_settings(url: str, **reconnect) -> PipelineSettings:
    return PipelineSettings.model_validate(
        {
            "name": "cam",
            "model": "digits32",
            "source": {
                "type": "rtsp",
                "url": url,
                "reconnect": {
                    "initial_s": 0.05,
                    "max_s": 0.4,
                    "jitter": 0.0,
                    "open_timeout_s": 2,
                    "read_timeout_s": 2,
                    **reconnect,
                },
            },
            "postprocess": {"type": "classification"},
            "queue_size": 4,
        }
    )


def test_a_dropped_stream_is_reopened_and_frames_keep_coming(mjpeg: MjpegServer):
    pipeline = build_pipeline(stream_settings(mjpeg.url), registry())
    predictions: list[tuple[int, int]] = []
    pipeline.add_listener(
        lambda frame, _inf, record: predictions.append(
            (int(frame.meta["position"]), record["result"]["top"][0]["index"])
        )
    )
    pipeline.start()
    try:
        deadline = time.monotonic() + 30
        while pipeline.stats()["source"]["reconnects"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pipeline.stop()
    stats = pipeline.stats()
    assert stats["source"]["stream_drops"] >= 3
    assert stats["source"]["reconnects"] >= 3 and mjpeg.connections >= 4
    assert stats["processed"] >= 30 and stats["errors"] == 0
    # JPEG-compressed real frames, still classified as the digit they show
    correct = sum(pred == mjpeg.labels[pos % 10] for pos, pred in predictions)
    assert correct >= 0.9 * len(predictions)


def test_an_unreachable_stream_is_retried_with_backoff_and_stops_promptly():
    url = f"http://127.0.0.1:{free_port()}/nothing-listens-here"
    pipeline = build_pipeline(stream_settings(url), registry())
    pipeline.start()
    time.sleep(1.5)
    started = time.monotonic()
    pipeline.stop()
    assert time.monotonic() - started < 3
    source = pipeline.stats()["source"]
    # delays 0.05, 0.1, 0.2, 0.4, 0.4, ...: within 1.5 s that is about 5-7 attempts,
    # not the hundreds a loop without backoff would make
    assert 3 <= source["failed_opens"] <= 9
    assert source["reconnects"] == 0 and "cannot open" in source["last_error"]
    assert pipeline.stats()["last_progress_age_s"] < 2.0  # idle but alive: the watchdog pings
