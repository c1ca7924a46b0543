"""Serving: named models whose versions can be swapped while requests are in flight.

``ServedModel`` is what pipelines and the local API call; ``ModelRegistry`` holds them by name;
``swap`` (health-gated, with automatic rollback) and ``isolation`` (inference in a supervised
worker process) build on it.
"""

from edge_agent.serving.served import (
    InferenceResult,
    LoadedVersion,
    ModelRegistry,
    ServedModel,
)

__all__ = ["InferenceResult", "LoadedVersion", "ModelRegistry", "ServedModel"]
