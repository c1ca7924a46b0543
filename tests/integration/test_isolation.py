"""Fault containment: a delegate that segfaults must not take the agent down."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import LiteRTDelegate, RuntimeSettings
from edge_agent.errors import InputError
from edge_agent.runtime import load_model
from edge_agent.serving.isolation import IsolatedBackend
from tests.fakes.native import crashing_delegate


@pytest.fixture(scope="module")
def digit(models_dir: Path) -> tuple[np.ndarray, int]:
    data = np.load(models_dir / "digits" / "test_set.npz")
    return data["x"][:1], int(data["y"][0])


def predicted(backend: IsolatedBackend, x: np.ndarray) -> int:
    (scores,) = backend.run({backend.inputs[0].name: x}).values()
    return int(np.argmax(scores))


def test_isolated_backend_answers_like_the_inline_one(models_dir, digit):
    backend = IsolatedBackend(models_dir / "digits" / "digits_int8.tflite", RuntimeSettings())
    try:
        assert backend.delegate.name == "xnnpack"
        assert backend.inputs[0].quantization is not None
        assert predicted(backend, digit[0]) == digit[1]
        assert backend.degraded is False
    finally:
        backend.close()


def test_a_delegate_that_segfaults_while_loading_is_demoted_and_the_model_still_serves(
    models_dir, digit, tmp_path
):
    library = crashing_delegate(tmp_path)
    settings = RuntimeSettings()
    settings.litert.delegates = [
        LiteRTDelegate(name="external", library=str(library)),
        LiteRTDelegate(name="xnnpack"),
    ]
    backend = IsolatedBackend(models_dir / "digits" / "digits_fp32.tflite", settings)
    try:
        assert backend.crash_count == 1
        assert backend.degraded is True
        assert backend.delegate.name == "xnnpack"
        assert predicted(backend, digit[0]) == digit[1]
    finally:
        backend.close()


def test_a_worker_killed_mid_service_is_restarted_and_the_request_succeeds(models_dir, digit):
    backend = IsolatedBackend(models_dir / "digits" / "digits_fp32.onnx", RuntimeSettings())
    x = digit[0].transpose(0, 3, 1, 2).copy()
    try:
        first_pid = backend.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGSEGV)  # what a native crash looks like from outside
        assert predicted(backend, x) == digit[1]
        assert backend.pid != first_pid
        assert backend.crash_count == 1
        assert backend.delegate.name == "cpu"  # one crash is under the limit: no demotion
    finally:
        backend.close()


def test_bad_inputs_are_input_errors_and_do_not_restart_the_worker(models_dir):
    backend = IsolatedBackend(models_dir / "digits" / "digits_fp32.tflite", RuntimeSettings())
    try:
        pid = backend.pid
        with pytest.raises(InputError, match="expects shape"):
            backend.run({backend.inputs[0].name: np.zeros((2, 2), np.float32)})
        assert backend.pid == pid and backend.crash_count == 0
    finally:
        backend.close()


def shm_regions() -> set[str]:
    return {p.name for p in Path("/dev/shm").iterdir() if p.name.startswith("psm_")}


def test_a_crash_mid_request_loses_only_that_request_and_leaks_no_shared_memory(models_dir, digit):
    """The worker dies while a request waits in its pipe: the request is retried on a new
    worker, the old region is unlinked, the new worker gets a fresh one, nothing stays behind."""
    before = shm_regions()
    backend = IsolatedBackend(models_dir / "digits" / "digits_fp32.onnx", RuntimeSettings())
    x = digit[0].transpose(0, 3, 1, 2).copy()
    try:
        assert predicted(backend, x) == digit[1]
        first_pid, first_region = backend.pid, backend._region.name
        assert first_pid is not None and first_region.lstrip("/") in shm_regions()
        os.kill(first_pid, signal.SIGSTOP)  # the request below is written, never answered
        answers: list[int] = []
        request = threading.Thread(target=lambda: answers.append(predicted(backend, x)))
        request.start()
        time.sleep(0.3)
        os.kill(first_pid, signal.SIGKILL)
        request.join(60)
        assert answers == [digit[1]]
        assert backend.pid not in (None, first_pid) and backend.crash_count == 1
        assert first_region.lstrip("/") not in shm_regions()
        assert predicted(backend, x) == digit[1]  # the next request is served as usual
    finally:
        backend.close()
    assert shm_regions() == before


def test_dynamic_shapes_grow_the_shared_region_and_answer_like_inline(models_dir):
    """A batch larger than the region (inputs) and than its output room (outputs) still gets
    the inline answer: the region grows, outputs too large go back pickled once."""
    path = models_dir / "digits" / "digits_fp32.onnx"
    inline = load_model(path, RuntimeSettings())
    backend = IsolatedBackend(path, RuntimeSettings())
    rng = np.random.default_rng(0)
    try:
        first_region = backend._region.name
        for batch in (1, 4096, 4096, 3, 4096):
            x = rng.random((batch, 1, 8, 8), dtype=np.float32)
            (got,) = backend.run({"input": x}).values()
            (want,) = inline.run({"input": x}).values()
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert backend._region.name != first_region and backend.crash_count == 0
        assert backend._output_bytes >= 4096 * 10 * 4  # learnt from the pickled answer
    finally:
        backend.close()
        inline.close()
