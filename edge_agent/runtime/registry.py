"""The backend registry: model format -> backend class, imported only when first needed.

A missing runtime is a clear error naming the package to install, not an ImportError at start-up,
and ``BACKENDS`` lists what exists for ``doctor`` and the tests.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from edge_agent.config import RuntimeSettings
from edge_agent.errors import ModelError
from edge_agent.runtime.base import Backend

BACKENDS: dict[str, str] = {
    ".tflite": "edge_agent.runtime.litert:LiteRTBackend",
    ".onnx": "edge_agent.runtime.onnx:OnnxBackend",
}
"""Model file suffix -> "module:Class" of the backend that runs it."""

_TFLITE_IDENTIFIER = b"TFL3"


def backend_class(suffix: str) -> type[Any]:
    """The backend class for a model file suffix (imports its module on first use)."""
    target = BACKENDS.get(suffix.lower())
    if target is None:
        raise ModelError(
            f"unsupported model format '{suffix or '(no suffix)'}': edge-agent runs "
            f"{', '.join(BACKENDS)} files (convert others with `edge-agent convert`)"
        )
    module_name, class_name = target.split(":")
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls


def load_model(
    path: Path | str, settings: RuntimeSettings | None = None, **backend_options: Any
) -> Backend:
    """Check the file, then load it with the backend its format needs.

    Raises ModelError naming the file and the cause (missing, unreadable, empty, truncated, not
    the format its suffix says), RuntimeNotInstalledError when the runtime is missing, and
    DelegateError when no delegate may run it under the failure policy.
    """
    path = Path(path)
    cls = backend_class(path.suffix)
    check_model_file(path)
    backend: Backend = cls(path, settings or RuntimeSettings(), **backend_options)
    return backend


def check_model_file(path: Path) -> None:
    """Catch what would otherwise reach a native runtime as garbage (and may crash it)."""
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    if not path.is_file():
        raise ModelError(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise ModelError(f"{path}: not readable by this user (check its permissions)")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path}: the file is empty (an interrupted copy or download?)")
    try:
        with path.open("rb") as model_file:
            head = model_file.read(8)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    looks_tflite = len(head) == 8 and head[4:8] == _TFLITE_IDENTIFIER
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        if not looks_tflite:
            raise ModelError(
                f"{path}: not a TFLite model (no 'TFL3' flatbuffer identifier); "
                "is it another format with the wrong extension?"
            )
    elif suffix == ".onnx" and looks_tflite:
        raise ModelError(f"{path}: this is a TFLite model named .onnx; rename it to .tflite")
