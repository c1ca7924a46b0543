"""A session factory for the ONNX backend that makes chosen providers fail, then uses real ORT.

ONNX Runtime on this CPU-only machine has no accelerator provider that can fail for real, so
this fake stands in for "TensorRT / CUDA listed but broken" (a missing library, a driver
mismatch): the session for a failing provider raises the way ORT does, every other session is
a real onnxruntime.InferenceSession.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import onnxruntime as ort


class ProviderFailure(RuntimeError):
    """What ORT raises when a provider cannot be created (its message style)."""


class FailingProviderSessions:
    """Callable like ``ort.InferenceSession``; providers in ``fail_at_load`` raise at creation,
    those in ``fail_at_run`` create fine and pass ``good_runs`` runs (the warm-up), then every
    ``run`` raises, as a GPU that falls over under load does."""

    def __init__(
        self, fail_at_load: Sequence[str] = (), fail_at_run: Sequence[str] = (), good_runs: int = 1
    ):
        self.fail_at_load = set(fail_at_load)
        self.fail_at_run = set(fail_at_run)
        self.good_runs = good_runs
        self.opened: list[list[str]] = []

    def __call__(self, path: str, options: Any, providers: Sequence[Any]) -> Any:
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        self.opened.append(names)
        if names[0] in self.fail_at_load:
            raise ProviderFailure(
                f"[ONNXRuntimeError] : 1 : FAIL : {names[0]} could not be created: "
                "libcudart.so.12: cannot open shared object file"
            )
        real_providers = [
            p
            for p in providers
            if (p[0] if isinstance(p, tuple) else p) in ort.get_available_providers()
        ]
        session = ort.InferenceSession(path, options, providers=real_providers)
        if names[0] in self.fail_at_run:
            return _FailsAtRun(session, names, self.good_runs)
        return session


class _FailsAtRun:
    def __init__(self, session: Any, names: list[str], good_runs: int):
        self._session = session
        self._names = names
        self._runs_left = good_runs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def get_providers(self) -> list[str]:
        return self._names

    def run(self, *args: Any, **kwargs: Any) -> Any:
        if self._runs_left > 0:
            self._runs_left -= 1
            return self._session.run(*args, **kwargs)
        raise ProviderFailure(
            f"[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : {self._names[0]} "
            "kernel failed: CUDA error cudaErrorLaunchFailure"
        )
