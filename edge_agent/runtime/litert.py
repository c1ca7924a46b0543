"""The LiteRT backend (`.tflite`): ai-edge-litert, else tflite-runtime, else TensorFlow Lite.

Delegates are tried in the order of the device config (see ``delegates.plan_litert``): each
attempt builds an interpreter, allocates tensors and runs the warm-up; the first that gets through
is kept. XNNPACK is LiteRT's default CPU delegate; `cpu` turns it off (reference kernels).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_agent.config import RuntimeSettings
from edge_agent.errors import DelegateError, InputError, ModelError, RuntimeNotInstalledError
from edge_agent.runtime.base import (
    DYNAMIC,
    BoundDelegate,
    Quantization,
    SkippedDelegate,
    TensorSpec,
)
from edge_agent.runtime.delegates import Attempt, DelegatePlan, plan_litert
from edge_agent.runtime.tensors import finish_outputs, prepare_inputs, zeros_for
from edge_agent.runtime.timing import note_queue_wait

log = logging.getLogger(__name__)

_RUNTIMES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")


@dataclass(frozen=True)
class LiteRTRuntime:
    """The interpreter module found on this machine."""

    module: str
    version: str
    interpreter: Any
    load_delegate: Callable[..., Any]
    op_resolver: Any | None
    """OpResolverType enum, where the runtime has it (it is how XNNPACK is turned off)."""


def find_runtime() -> LiteRTRuntime:
    """Import the first LiteRT flavour installed; RuntimeNotInstalledError names the fix."""
    for module_name in _RUNTIMES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        top = importlib.import_module(module_name.split(".")[0])
        if module_name == "tensorflow.lite":
            load = module.experimental.load_delegate
            resolver = getattr(module.experimental, "OpResolverType", None)
        else:
            load = module.load_delegate
            resolver = getattr(module, "OpResolverType", None)
        return LiteRTRuntime(
            module=module_name.split(".")[0],
            version=str(getattr(top, "__version__", "unknown")),
            interpreter=module.Interpreter,
            load_delegate=load,
            op_resolver=resolver,
        )
    raise RuntimeNotInstalledError(
        "no LiteRT runtime is installed to run .tflite models: pip install 'edge-agent[tflite]' "
        "(ai-edge-litert; tflite-runtime also works on NumPy 1.x)"
    )


def library_problem(library: str) -> str | None:
    """Why the dynamic loader cannot load ``library``, or None when it can.

    Checked before LiteRT's own ``load_delegate``, whose half-built Delegate object raises
    again from ``__del__`` when the library is missing (noise on stderr at every fallback).
    """
    try:
        ctypes.CDLL(library)
    except OSError as exc:
        return f"cannot load {library}: {exc}"
    return None


class LiteRTBackend:
    """A `.tflite` model on the best LiteRT delegate that loads and runs."""

    format: ClassVar[str] = "tflite"

    def __init__(self, path: Path, settings: RuntimeSettings) -> None:
        self.path = path
        self._settings = settings
        self._runtime = find_runtime()
        self._lock = threading.Lock()
        self._plan: DelegatePlan = plan_litert(
            settings.litert.delegates, settings.on_delegate_failure
        )
        self._interpreter: Any = None
        self._attempt_index = -1
        self.delegate = BoundDelegate(name="none")
        self._bind_from(0, skipped=[])

    # -- binding ---------------------------------------------------------------------------

    def _bind_from(self, start: int, skipped: list[SkippedDelegate]) -> None:
        """Bind the first attempt from ``start`` on that loads and runs its warm-up."""
        last_error: Exception | None = None
        for index in range(start, len(self._plan.attempts)):
            attempt = self._plan.attempts[index]
            try:
                interpreter = self._build(attempt)
                self._adopt(interpreter, index, attempt, skipped)
                self.warm_up(self._settings.warmup_runs)
                return
            except ModelError:
                raise
            except Exception as exc:  # a delegate failing is expected; the reason is kept
                last_error = exc
                reason = f"{type(exc).__name__}: {exc}".strip()
                log.warning(
                    "%s: delegate %s failed, trying the next: %s", self.path, attempt.name, reason
                )
                skipped.append(SkippedDelegate(attempt.name, reason))
        tried = "; ".join(f"{s.name}: {s.reason}" for s in skipped)
        raise DelegateError(
            f"{self.path}: no delegate could run the model (tried {tried}). "
            + (
                "on_delegate_failure is 'fail', so CPU was not tried"
                if self._settings.on_delegate_failure == "fail"
                else ""
            )
        ) from last_error

    def _build(self, attempt: Attempt) -> Any:
        runtime = self._runtime
        kwargs: dict[str, Any] = {
            "model_path": str(self.path),
            "num_threads": self._settings.threads,
        }
        if attempt.target:
            problem = library_problem(attempt.target)
            if problem:
                raise OSError(problem)
            kwargs["experimental_delegates"] = [
                runtime.load_delegate(attempt.target, dict(attempt.options) or None)
            ]
        elif attempt.name == "cpu" and runtime.op_resolver is not None:
            kwargs["experimental_op_resolver_type"] = (
                runtime.op_resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        try:
            interpreter = runtime.interpreter(**kwargs)
        except ValueError as exc:
            if attempt.target:
                raise  # the delegate refused the model: try the next one
            raise ModelError(f"{self.path}: LiteRT cannot load the model: {exc}") from None
        interpreter.allocate_tensors()
        return interpreter

    def _adopt(
        self, interpreter: Any, index: int, attempt: Attempt, skipped: list[SkippedDelegate]
    ) -> None:
        self._interpreter = interpreter
        self._attempt_index = index
        details = interpreter.get_input_details()
        self.inputs = tuple(_spec(d) for d in details)
        self._input_indices = tuple(d["index"] for d in details)
        self._input_shapes = [tuple(d["shape"]) for d in details]
        out_details = interpreter.get_output_details()
        self.outputs = tuple(_spec(d) for d in out_details)
        self._output_indices = tuple(d["index"] for d in out_details)
        self.delegate = BoundDelegate(
            name=attempt.name,
            detail=attempt.target or ("built-in" if attempt.name == "xnnpack" else "reference"),
            skipped=list(skipped),
        )

    # -- running ---------------------------------------------------------------------------

    def run(
        self, inputs: Mapping[str, np.ndarray], *, dequantize: bool = True
    ) -> dict[str, np.ndarray]:
        """Run one inference (see ``Backend.run``); thread-safe."""
        arrays = prepare_inputs(self.inputs, inputs, self.path.name)
        waiting = time.perf_counter()
        with self._lock:
            note_queue_wait(time.perf_counter() - waiting)
            if self._interpreter is None:
                raise ModelError(f"{self.path}: the model was closed")
            try:
                values = self._invoke(arrays)
            except InputError:
                raise
            except Exception as exc:
                values = self._fall_back_and_invoke(arrays, exc)
        return finish_outputs(self.outputs, values, dequantize)

    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        interpreter = self._interpreter
        resized = False
        for position, (index, array) in enumerate(zip(self._input_indices, arrays, strict=True)):
            if array.shape != self._input_shapes[position]:
                interpreter.resize_tensor_input(index, array.shape, strict=True)
                self._input_shapes[position] = array.shape
                resized = True
        if resized:
            interpreter.allocate_tensors()
        for index, array in zip(self._input_indices, arrays, strict=True):
            interpreter.set_tensor(index, array)
        interpreter.invoke()
        return [interpreter.get_tensor(index) for index in self._output_indices]

    def _fall_back_and_invoke(self, arrays: list[np.ndarray], error: Exception) -> list[np.ndarray]:
        """The bound delegate failed at run time: move down the plan (policy permitting)."""
        attempt = self._plan.attempts[self._attempt_index]
        if self._attempt_index + 1 >= len(self._plan.attempts):
            raise ModelError(
                f"{self.path}: inference failed on delegate '{attempt.name}': {error}"
            ) from error
        log.warning(
            "%s: delegate %s failed at run time, falling back: %s", self.path, attempt.name, error
        )
        skipped = [*self.delegate.skipped, SkippedDelegate(attempt.name, f"failed at run: {error}")]
        self._bind_from(self._attempt_index + 1, skipped)
        return self._invoke(arrays)

    def warm_up(self, runs: int = 1) -> None:
        """Run ``runs`` inferences on zeros, bypassing input checks."""
        arrays = [zeros_for(spec) for spec in self.inputs]
        for _ in range(runs):
            self._invoke(arrays)

    def close(self) -> None:
        """Drop the interpreter (and with it the delegate)."""
        with self._lock:
            self._interpreter = None

    # raw access for benchmarks comparing against the bare runtime
    @property
    def interpreter(self) -> Any:
        """The underlying LiteRT interpreter (for benchmarks and diagnostics only)."""
        return self._interpreter

    @property
    def runtime(self) -> LiteRTRuntime:
        """Which LiteRT flavour is in use."""
        return self._runtime


def _spec(detail: Mapping[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature")
    shape = tuple(int(d) for d in (signature if signature is not None else detail["shape"]))
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantization = None
    if dtype.kind in "iu" and scale:
        quantization = Quantization(float(scale), int(zero_point))
    return TensorSpec(
        name=str(detail["name"]),
        shape=tuple(DYNAMIC if d < 0 else d for d in shape),
        dtype=dtype,
        quantization=quantization,
    )
