"""Folder watcher, MQTT tensor source and MQTT results sink, against real parts."""

from __future__ import annotations

import io
import json
import queue
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import PipelineSettings
from edge_agent.pipeline import build_pipeline
from edge_agent.runtime import load_model
from edge_agent.serving import LoadedVersion, ModelRegistry, ServedModel
from edge_agent.transport import topics
from edge_agent.transport.client import Message, MqttClient
from tests.fixtures.mosquitto import Broker
from tests.fixtures.video import digit_frames
from tests.fixtures.wait import wait_for

MODELS = Path(__file__).resolve().parent.parent.parent / "models" / "digits32"


def registry(file: str = "digits32_fp32.onnx") -> ModelRegistry:
    path = MODELS / file
    reg = ModelRegistry()
    reg.add(ServedModel("digits32", LoadedVersion("digits32", "1", load_model(path), path)))
    return reg


def test_folder_watcher_classifies_new_images_and_moves_them(tmp_path):
    inbox, done = tmp_path / "inbox", tmp_path / "done"
    frames, labels = digit_frames(12)
    inbox.mkdir()
    for i in range(6):  # already there at start
        cv2.imwrite(str(inbox / f"{i:02d}_{labels[i]}.png"), frames[i])
    settings = PipelineSettings.model_validate(
        {
            "name": "folder",
            "model": "digits32",
            "source": {
                "type": "folder",
                "path": str(inbox),
                "poll_interval_s": 0.05,
                "settle_s": 0.0,
                "after": "move",
                "done_dir": str(done),
            },
            "postprocess": {"type": "classification", "top_k": 1},
            "sinks": [{"type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
        }
    )
    pipeline = build_pipeline(settings, registry())
    pipeline.start()
    try:
        for i in range(6, 12):  # arriving while it runs, written elsewhere and renamed in
            cv2.imwrite(str(tmp_path / "tmp.png"), frames[i])
            (tmp_path / "tmp.png").rename(inbox / f"{i:02d}_{labels[i]}.png")
        (inbox / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        wait_for(
            lambda: pipeline.processed == 12 and pipeline.source.stats()["unreadable"] == 1,
            15,
            "12 images processed and the corrupt one counted",
        )
    finally:
        pipeline.stop()
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(r["frame"] for r in records) == sorted(p.name for p in done.iterdir())
    for record in records:
        assert record["result"]["top"][0]["index"] == int(record["frame"][3])
    assert [p.name for p in inbox.iterdir()] == ["zz_corrupt.png"]  # left for a person to see


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_mqtt_tensors_in_results_out_and_garbage_rejected(mosquitto: Broker):
    device = "cam-7"
    in_topic = "sensors/cam-7/tensors"
    settings = PipelineSettings.model_validate(
        {
            "name": "tensors",
            "model": "digits32",
            "source": {"type": "mqtt", "topic": in_topic},
            "postprocess": {"type": "classification", "top_k": 1},
            "sinks": [{"type": "mqtt", "qos": 1}],
            "queue_size": 64,
        }
    )
    frames, labels = digit_frames(8)
    inputs = [
        cv2.cvtColor(
            cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
        ).astype(np.float32)
        / 255.0
        for f in frames
    ]
    results: queue.Queue[Message] = queue.Queue()
    with MqttClient(mosquitto.url, "agent") as agent, MqttClient(mosquitto.url, "app") as app:
        agent.connect()
        app.connect()
        assert app.subscribe(topics.all_results(device), results.put)
        pipeline = build_pipeline(settings, registry(), device_id=device, client=agent)
        pipeline.start()  # its source's subscription is acknowledged when start returns
        try:
            app.publish(in_topic, b"\xff\x00 garbage", qos=1).wait_for_publish(5)
            app.publish(in_topic, npy_bytes(np.array(["text"])), qos=1).wait_for_publish(5)
            for x in inputs:  # NHWC float32 without batch axis, as a sensor might send it
                app.publish(in_topic, npy_bytes(x), qos=1).wait_for_publish(5)
            received = [json.loads(results.get(timeout=10).payload) for _ in inputs]
        finally:
            pipeline.stop()
    assert [r["result"]["top"][0]["index"] for r in received] == labels
    assert all(r["pipeline"] == "tensors" for r in received)
    stats = pipeline.stats()
    assert stats["source"]["rejected"] == 2 and stats["processed"] == 8
    assert stats["sinks"][0]["published"] == 8
