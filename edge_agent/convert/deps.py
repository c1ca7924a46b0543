"""Importing the heavy converter dependencies on demand, with an error that says what to install.

The device install has neither TensorFlow nor onnx nor onnx2tf; only the operator-side
``convert`` extra brings them. Every converter module imports them through :func:`require`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edge_agent.errors import RuntimeNotInstalledError

INSTALL_HINT = "pip install 'edge-agent[convert]'"

_PACKAGE_OF = {
    "tensorflow": "tensorflow-cpu (or tensorflow)",
    "keras": "keras (comes with tensorflow)",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "onnx2tf": "onnx2tf (pip install --no-deps onnx2tf; see docs/convert.md)",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise RuntimeNotInstalledError naming the package and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        package = _PACKAGE_OF.get(top, top)
        raise RuntimeNotInstalledError(
            f"{purpose} needs {package}, which is not installed here ({exc}): {INSTALL_HINT} "
            "on an operator machine (the device install never needs it)"
        ) from None
