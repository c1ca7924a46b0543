"""Dynamic batching on a real ONNX Runtime model with an open batch dimension: answers equal
to unbatched runs, and requests really share runtime invocations (counted by a spy around the
real backend)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from edge_agent.config import BatchingSettings, RuntimeSettings, ServingSettings
from edge_agent.errors import ConfigError, InputError
from edge_agent.runtime import Backend, load_model
from edge_agent.serving.batching import BatchingBackend
from edge_agent.serving.loading import load_version


class CountingBackend:
    """The real backend, with every invocation's batch size written down."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.inputs, self.outputs = backend.inputs, backend.outputs
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def run(self, inputs: Mapping[str, np.ndarray], *, dequantize: bool = True) -> dict:
        with self._lock:
            self.calls.append(len(next(iter(inputs.values()))))
        return self.backend.run(inputs, dequantize=dequantize)

    def close(self) -> None:
        self.backend.close()


@pytest.fixture
def digits(models_dir: Path):
    backend = load_model(models_dir / "digits" / "digits_fp32.onnx", RuntimeSettings(threads=1))
    yield backend
    backend.close()


def concurrently(batcher: BatchingBackend, feeds: list[dict[str, np.ndarray]]) -> list:
    """Run every feed from its own thread, all released at once; results in feed order."""
    results: list = [None] * len(feeds)
    start = threading.Barrier(len(feeds))

    def one(index: int) -> None:
        start.wait()
        try:
            results[index] = batcher.run(feeds[index])
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(feeds))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_requests_run_as_batches_and_answer_exactly_like_unbatched(digits):
    spy = CountingBackend(digits)
    batcher = BatchingBackend(spy, max_batch_size=8, max_queue_delay_s=1.0)
    x = np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32)
    feeds = [{"input": x[i : i + 1]} for i in range(16)]
    results = concurrently(batcher, feeds)
    for feed, result in zip(feeds, results, strict=True):
        (alone,) = digits.run(feed).values()
        (got,) = result.values()
        assert got.shape == (1, 10) and np.array_equal(got, alone)
    assert sum(spy.calls) == 16
    assert len(spy.calls) <= 4 and max(spy.calls) == 8  # 16 requests, 2-4 runtime calls
    assert batcher.batches == len(spy.calls)


def test_requests_of_several_rows_are_split_back_by_their_own_rows(digits):
    spy = CountingBackend(digits)
    batcher = BatchingBackend(spy, max_batch_size=16, max_queue_delay_s=1.0)
    rng = np.random.default_rng(1)
    feeds = [{"input": rng.random((rows, 1, 8, 8), dtype=np.float32)} for rows in (3, 1, 5, 2)]
    results = concurrently(batcher, feeds)
    for feed, result in zip(feeds, results, strict=True):
        assert np.array_equal(result["probabilities"], digits.run(feed)["probabilities"])
    assert len(spy.calls) < 4 and sum(spy.calls) == 11


def test_a_bad_request_fails_alone_and_does_not_fail_its_neighbours(digits):
    spy = CountingBackend(digits)
    batcher = BatchingBackend(spy, max_batch_size=8, max_queue_delay_s=0.1)
    good = np.zeros((1, 1, 8, 8), np.float32)
    feeds = [{"input": good}] * 3 + [{"input": np.zeros((1, 8, 8, 1), np.float32)}]
    results = concurrently(batcher, feeds)
    assert isinstance(results[3], InputError)
    assert all(isinstance(r, dict) for r in results[:3])


def test_an_idle_model_with_no_delay_runs_each_request_at_once(digits):
    spy = CountingBackend(digits)
    batcher = BatchingBackend(spy, max_batch_size=8, max_queue_delay_s=0.0)
    for _ in range(5):
        batcher.run({"input": np.zeros((1, 1, 8, 8), np.float32)})
    assert spy.calls == [1] * 5


def test_batching_is_off_by_default_and_wraps_only_models_with_an_open_batch_dimension(
    models_dir,
):
    assert ServingSettings().batching is None
    settings = BatchingSettings(max_batch_size=4, max_queue_delay_ms=1)
    onnx = load_version(
        "d", "1", models_dir / "digits" / "digits_fp32.onnx", RuntimeSettings(), batching=settings
    )
    tflite = load_version(
        "d", "1", models_dir / "digits" / "digits_int8.tflite", RuntimeSettings(), batching=settings
    )
    try:
        assert isinstance(onnx.backend, BatchingBackend) and onnx.backend.max_batch_size == 4
        assert onnx.backend.runtime_format == "onnx" and onnx.backend.delegate.name == "cpu"
        assert not isinstance(tflite.backend, BatchingBackend)  # fixed 1x8x8x1 input
    finally:
        onnx.drain_and_close()
        tflite.drain_and_close()


def test_batching_config_names_the_bad_key():
    with pytest.raises((ConfigError, ValueError), match="max_batch_size"):
        ServingSettings.model_validate({"batching": {"max_batch_size": 1}})
    with pytest.raises((ConfigError, ValueError), match="max_queue_delay"):
        ServingSettings.model_validate({"batching": {"max_queue_delay": 5}})
