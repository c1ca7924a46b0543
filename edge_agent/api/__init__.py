"""The local inference API: Open Inference Protocol (KServe v2) over HTTP, plus /metrics."""

from edge_agent.api.server import ApiServer

__all__ = ["ApiServer"]
