"""The ONNX Runtime backend (`.onnx`).

Providers come from the device config's preference order, filtered to what this onnxruntime
build has (``delegates.plan_onnx``). Each attempt opens a session whose provider list is the
preferred provider followed by the rest of the plan, so nodes the preferred provider cannot run
land on the next one. The warm-up runs with ORT's profiler on, which tells how many nodes each
provider actually took; the profiler is then switched off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import platform
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edge_agent.config import RuntimeSettings
from edge_agent.errors import DelegateError, InputError, ModelError, RuntimeNotInstalledError
from edge_agent.runtime.base import DYNAMIC, BoundDelegate, SkippedDelegate, TensorSpec
from edge_agent.runtime.delegates import (
    DelegatePlan,
    count_placement,
    ort_provider_chain,
    plan_onnx,
    primary_provider,
)
from edge_agent.runtime.tensors import finish_outputs, prepare_inputs, zeros_for

log = logging.getLogger(__name__)

SessionFactory = Callable[..., Any]
"""Makes a session like ``onnxruntime.InferenceSession(path, sess_options, providers=...)``.
Injected by tests (``tests/fakes``) to make a provider fail on purpose."""

_ORT_TYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(uint16)": "uint16",
    "tensor(int32)": "int32",
    "tensor(uint32)": "uint32",
    "tensor(int64)": "int64",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}
_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def onnxruntime_missing_message(machine: str) -> str:
    """What to do when onnxruntime cannot be imported on a CPU of kind ``machine``.

    32-bit ARM (armv7l) has no onnxruntime wheel, and the ``onnx`` extra installs nothing there
    (pyproject.toml), so telling that user to install the extra would send them in a circle.
    """
    if machine == "armv7l":
        return (
            "onnxruntime has no wheel for 32-bit ARM (armv7l): run .tflite models here, or "
            "install a 64-bit OS (aarch64) to run .onnx models"
        )
    return (
        "onnxruntime is not installed to run .onnx models: pip install 'edge-agent[onnx]' "
        "(or onnxruntime-gpu / onnxruntime-openvino for those providers)"
    )


def import_onnxruntime() -> Any:
    """Import onnxruntime or say how to install it on this machine."""
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeNotInstalledError(onnxruntime_missing_message(platform.machine())) from None
    return onnxruntime


class OnnxBackend:
    """An `.onnx` model on the best execution providers that load and run."""

    format: ClassVar[str] = "onnx"

    def __init__(
        self,
        path: Path,
        settings: RuntimeSettings,
        session_factory: SessionFactory | None = None,
    ) -> None:
        self.path = path
        self._settings = settings
        self._ort = import_onnxruntime()
        self._make_session: SessionFactory = session_factory or self._ort.InferenceSession
        self._plan: DelegatePlan = plan_onnx(
            settings.onnx.providers,
            self._ort.get_available_providers(),
            settings.on_delegate_failure,
        )
        self._session: Any = None
        self._attempt_index = -1
        self.delegate = BoundDelegate(name="none")
        self._bind_from(0, list(self._plan.skipped))

    # -- binding ---------------------------------------------------------------------------

    def _bind_from(self, start: int, skipped: list[SkippedDelegate]) -> None:
        last_error: Exception | None = None
        for index in range(start, len(self._plan.attempts)):
            attempt = self._plan.attempts[index]
            chain = ort_provider_chain(self._plan, index)
            try:
                with tempfile.TemporaryDirectory(prefix="edge-agent-ort-") as profile_dir:
                    session = self._open(chain, Path(profile_dir))
                    self._adopt(session)
                    placement = self._warm_up_and_place(session)
            except ModelError:
                raise
            except Exception as exc:  # a provider failing is expected; the reason is kept
                last_error = exc
                reason = f"{type(exc).__name__}: {exc}".strip()
                log.warning(
                    "%s: provider %s failed, trying the next: %s", self.path, attempt.name, reason
                )
                skipped.append(SkippedDelegate(attempt.name, reason))
                continue
            bound_chain = list(session.get_providers())
            if attempt.target not in bound_chain:
                # ORT drops a provider that fails to initialise and carries on without it.
                skipped.append(
                    SkippedDelegate(
                        attempt.name,
                        f"onnxruntime dropped {attempt.target} while creating the "
                        "session (its log says why: missing CUDA/TensorRT libraries, usually)",
                    )
                )
                if self._settings.on_delegate_failure == "fail":
                    raise DelegateError(
                        f"{self.path}: {skipped[-1].reason}; on_delegate_failure is 'fail'"
                    )
            self._attempt_index = index
            self.delegate = BoundDelegate(
                name=primary_provider(placement, bound_chain),
                detail=" > ".join(bound_chain),
                node_placement=placement,
                skipped=skipped,
            )
            return
        tried = "; ".join(f"{s.name}: {s.reason}" for s in skipped)
        raise DelegateError(
            f"{self.path}: no execution provider could run the model ({tried})"
        ) from last_error

    def _open(self, chain: list[tuple[str, dict[str, str]]], profile_dir: Path) -> Any:
        ort = self._ort
        options = ort.SessionOptions()
        if self._settings.threads:
            options.intra_op_num_threads = self._settings.threads
        if self._settings.onnx.inter_op_threads:
            options.inter_op_num_threads = self._settings.onnx.inter_op_threads
        model_path = self.path
        level = self._settings.onnx.graph_optimization
        cache = self._optimized_cache_path(chain)
        if cache is not None and cache.exists():
            model_path, level = cache, "disable"  # optimized already: load it as it is
        elif cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            options.optimized_model_filepath = str(cache)
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[level])
        if self._settings.warmup_runs > 0:
            options.enable_profiling = True
            options.profile_file_prefix = str(profile_dir / "profile")
        try:
            return self._make_session(str(model_path), options, providers=chain)
        except Exception as exc:
            if _is_model_problem(exc):
                raise ModelError(
                    f"{self.path}: onnxruntime cannot load the model: {_first_line(exc)}"
                ) from None
            raise

    def _optimized_cache_path(self, chain: list[tuple[str, dict[str, str]]]) -> Path | None:
        directory = self._settings.onnx.optimized_model_dir
        if directory is None:
            return None
        digest = hashlib.sha256()
        with self.path.open("rb") as model_file:
            for block in iter(lambda: model_file.read(1 << 20), b""):
                digest.update(block)
        digest.update(repr((chain, self._settings.onnx.graph_optimization)).encode())
        return directory / f"{self.path.stem}.{digest.hexdigest()[:16]}.opt.onnx"

    def _adopt(self, session: Any) -> None:
        self._session = session
        self.inputs = tuple(_spec(arg) for arg in session.get_inputs())
        self.outputs = tuple(_spec(arg) for arg in session.get_outputs())
        self._output_names = [spec.name for spec in self.outputs]
        self._input_names = [spec.name for spec in self.inputs]

    def _warm_up_and_place(self, session: Any) -> dict[str, int] | None:
        if self._settings.warmup_runs == 0:
            return None
        self.warm_up(self._settings.warmup_runs)
        profile = session.end_profiling()
        try:
            events = json.loads(Path(profile).read_text())
        except (OSError, ValueError):
            return None
        provider_of_node = {
            str(event["name"]): event["args"]["provider"]
            for event in events
            if event.get("cat") == "Node"
            and "provider" in event.get("args", {})
            and str(event.get("name", "")).endswith("_kernel_time")
        }  # keyed by node: every warm-up run lists each node again
        return count_placement(provider_of_node.values())

    # -- running ---------------------------------------------------------------------------

    def run(
        self, inputs: Mapping[str, np.ndarray], *, dequantize: bool = True
    ) -> dict[str, np.ndarray]:
        """Run one inference (see ``Backend.run``); thread-safe, as ORT sessions are."""
        arrays = prepare_inputs(self.inputs, inputs, self.path.name)
        if self._session is None:
            raise ModelError(f"{self.path}: the model was closed")
        try:
            values = self._invoke(arrays)
        except InputError:
            raise
        except Exception as exc:
            values = self._fall_back_and_invoke(arrays, exc)
        return finish_outputs(self.outputs, values, dequantize)

    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        values: list[np.ndarray] = self._session.run(
            self._output_names, dict(zip(self._input_names, arrays, strict=True))
        )
        return values

    def _fall_back_and_invoke(self, arrays: list[np.ndarray], error: Exception) -> list[np.ndarray]:
        attempt = self._plan.attempts[self._attempt_index]
        if self._attempt_index + 1 >= len(self._plan.attempts):
            raise ModelError(
                f"{self.path}: inference failed on provider '{self.delegate.name}': "
                f"{_first_line(error)}"
            ) from error
        log.warning(
            "%s: provider %s failed at run time, falling back: %s", self.path, attempt.name, error
        )
        skipped = [
            *self.delegate.skipped,
            SkippedDelegate(attempt.name, f"failed at run: {_first_line(error)}"),
        ]
        self._bind_from(self._attempt_index + 1, skipped)
        return self._invoke(arrays)

    def warm_up(self, runs: int = 1) -> None:
        """Run ``runs`` inferences on zeros (dynamic dims set to 1)."""
        arrays = [zeros_for(spec) for spec in self.inputs]
        for _ in range(runs):
            self._invoke(arrays)

    def close(self) -> None:
        """Release the session."""
        self._session = None

    @property
    def session(self) -> Any:
        """The underlying InferenceSession (for benchmarks and diagnostics only)."""
        return self._session


def _spec(arg: Any) -> TensorSpec:
    type_name = str(arg.type)
    if type_name not in _ORT_TYPES:
        raise ModelError(
            f"tensor '{arg.name}' has type {type_name}, which edge-agent does not "
            "handle (tensors of numbers and booleans only)"
        )
    shape = tuple(d if isinstance(d, int) and d >= 0 else DYNAMIC for d in (arg.shape or ()))
    return TensorSpec(name=str(arg.name), shape=shape, dtype=np.dtype(_ORT_TYPES[type_name]))


def _is_model_problem(exc: Exception) -> bool:
    kind = type(exc).__name__
    return (
        kind in ("InvalidProtobuf", "InvalidGraph", "NoSuchFile", "Fail", "NotImplemented")
        and "provider" not in str(exc).lower()
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


with contextlib.suppress(Exception):  # keep ORT's own C++ logging quiet unless asked
    import onnxruntime as _ort_for_logging

    _ort_for_logging.set_default_logger_severity(3)
