import io
import json

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.config import CaptureSettings, PipelineSettings
from edge_agent.errors import InputError
from edge_agent.pipeline.folder_source import ready_files
from edge_agent.pipeline.mqtt_source import SINGLE_INPUT, decode_tensor_payload
from edge_agent.transport import topics


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def test_decodes_npy_npz_and_json_payloads():
    assert decode_tensor_payload(npy(np.ones((2, 2), np.float32)), 10**6)[SINGLE_INPUT].sum() == 4
    buffer = io.BytesIO()
    np.savez(buffer, a=np.zeros(3), b=np.ones(2, np.int8))
    assert sorted(decode_tensor_payload(buffer.getvalue(), 10**6)) == ["a", "b"]
    document = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
    arrays = decode_tensor_payload(json.dumps(document).encode(), 10**6)
    assert arrays["x"].dtype == np.float32 and arrays["x"].shape == (1, 2)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\x00garbage", "neither"),
        (b"\x93NUMPY\x01\x00garbage", ".npy"),
        (
            b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1]}]}',
            "inputs\\[0\\]",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "STRING", "data": [1]}]}',
            "unknown",
        ),
        (b"[1, 2]", "needs"),
    ],
)
def test_garbage_payloads_are_clear_input_errors(payload, message):
    with pytest.raises(InputError, match=message):
        decode_tensor_payload(payload, 10**6)


def test_pickled_object_arrays_are_refused_so_a_payload_cannot_run_code():
    with pytest.raises(InputError):
        decode_tensor_payload(npy(np.array([{"x": 1}], dtype=object)), 10**6)


def test_oversized_payloads_are_refused_before_decoding():
    with pytest.raises(InputError, match="limit"):
        decode_tensor_payload(b"x" * 2000, 1024)


def test_folder_files_are_read_once_settled_oldest_first():
    observed: dict = {}
    handled: set[str] = set()
    listing = {"b.png": (10, 200), "a.png": (10, 300)}
    assert ready_files(listing, observed, handled, now=0.0, settle_s=1.0) == []
    listing["b.png"] = (20, 250)  # still being written
    assert ready_files(listing, observed, handled, now=1.5, settle_s=1.0) == ["a.png"]
    assert ready_files(listing, observed, handled, now=2.6, settle_s=1.0) == ["b.png", "a.png"]
    handled.add("b.png")
    assert ready_files(listing, observed, handled, now=3.0, settle_s=0.0) == ["a.png"]


def test_pipeline_config_rejects_unknown_source_types_and_keys():
    with pytest.raises(ValidationError, match="camera"):
        PipelineSettings.model_validate({"name": "p", "model": "m", "source": {"type": "webcam"}})
    with pytest.raises(ValidationError, match="loop"):
        PipelineSettings.model_validate(
            {
                "name": "p",
                "model": "m",
                "source": {"type": "rtsp", "url": "rtsp://h/s", "loop": True},
            }
        )
    with pytest.raises(ValidationError, match="done_dir"):
        PipelineSettings.model_validate(
            {"name": "p", "model": "m", "source": {"type": "folder", "path": "/x", "after": "move"}}
        )


def test_capture_config_checks_time_windows_and_rates():
    with pytest.raises(ValidationError, match="HH:MM"):
        CaptureSettings.model_validate({"upload": {"time_window": "22-6"}})
    with pytest.raises(ValidationError, match="person"):
        CaptureSettings.model_validate({"by_class": {"rates": {"person": 2.0}}})
    assert CaptureSettings.model_validate({"upload": {"time_window": "22:00-06:00"}})


def test_results_topic():
    assert topics.device_results("cam-1", "door.v2") == "ea/v1/cam-1/results/door.v2"
    assert topics.all_results() == "ea/v1/+/results/+"
    for bad in ("a/b", "+", "#", ""):
        with pytest.raises(ValueError):
            topics.device_results("cam-1", bad)
