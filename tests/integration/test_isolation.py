"""Fault containment: a delegate that segfaults must not take the agent down."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import LiteRTDelegate, RuntimeSettings
from edge_agent.errors import InputError
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
