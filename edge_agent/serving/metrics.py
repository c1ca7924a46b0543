"""Prometheus metrics of served models, fed by ServedModel observers (API and pipelines alike).

Labels are bounded: model name and version (a handful per device), outcome and delegate; never
request ids or inputs. The registry is per agent, so tests can run several in one process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from edge_agent.serving.served import InferenceResult, ServedModel

VERSIONS_KEPT = 4
"""Versions per model whose request counters are kept: a hot swap a week for years must not
add a series each; the newest few cover the active, previous and in-flight versions."""
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ServingMetrics:
    """Counters and histograms for every ServedModel attached to it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edge_agent_inferences",
            "Inferences run, by outcome.",
            ["model", "version", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "edge_agent_inference_latency_seconds",
            "Time in the runtime per inference.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue = Histogram(
            "edge_agent_inference_queue_seconds",
            "Of the inference latency, the wait for a backend busy with other requests.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.compute = Histogram(
            "edge_agent_inference_compute_seconds",
            "Of the inference latency, the time the backend worked on this request.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.active = Gauge(
            "edge_agent_model_active",
            "1 for the version and delegate now serving each model.",
            ["model", "version", "delegate"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "edge_agent_model_swaps",
            "Version changes, by kind (activate, reject, rollback, restore).",
            ["model", "kind"],
            registry=self.registry,
        )
        self._active_labels: dict[str, tuple[str, str, str]] = {}
        self._versions: dict[str, list[str]] = {}
        """Per model, the versions it has served, oldest first (at most VERSIONS_KEPT)."""
        self.degraded = Gauge(
            "edge_agent_degraded",
            "1 while a model runs below its preferred delegate.",
            ["model"],
            registry=self.registry,
        )

    def attach(self, served: ServedModel) -> None:
        """Count every request of ``served`` from now on."""
        name = served.name
        latency = self.latency.labels(name)
        queue = self.queue.labels(name)
        compute = self.compute.labels(name)

        def on_result(_inputs: Mapping[str, np.ndarray], result: InferenceResult) -> None:
            self.requests.labels(name, result.version, "ok").inc()
            latency.observe(result.latency_s)
            queue.observe(result.queue_s)
            compute.observe(result.latency_s - result.queue_s)

        def on_error(version: str, _error: BaseException) -> None:
            self.requests.labels(name, version, "error").inc()

        served.add_observer(on_result)
        served.add_error_observer(on_error)
        self.mark_active(served)

    def mark_active(self, served: ServedModel, degraded: bool = False) -> None:
        """Record which version and delegate ``served`` uses now."""
        version = served.active
        labels = (served.name, version.version, version.backend.delegate.name)
        previous = self._active_labels.get(served.name)
        if previous is not None and previous != labels:
            self.active.remove(*previous)  # one series per model: the one serving now
        versions = self._versions.setdefault(served.name, [])
        if version.version not in versions:
            versions.append(version.version)
        while len(versions) > VERSIONS_KEPT:  # a series per release ever served otherwise
            old = versions.pop(0)
            for outcome in ("ok", "error"):
                with contextlib.suppress(KeyError):
                    self.requests.remove(served.name, old, outcome)
        self._active_labels[served.name] = labels
        self.active.labels(*labels).set(1)
        self.degraded.labels(served.name).set(1 if degraded else 0)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
