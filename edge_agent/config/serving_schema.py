"""Config of how the agent serves models: isolation, batching, swap gates, the watchdog."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge_agent.config.base import StrictModel


class SwapGateSettings(StrictModel):
    """What a new model version must show before it serves, and keep showing after."""

    shadow_seconds: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Seconds of live traffic mirrored to the candidate (after the buffered "
        "recent requests are replayed on it).",
    )
    min_samples: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Shadow comparisons needed before judging; fewer rejects the candidate.",
    )
    min_agreement: float = Field(
        default=0.98,
        ge=0,
        le=1,
        description="Share of inputs on which candidate and active version must agree "
        "(classifiers: same top-1 class; other outputs: cosine similarity >= 0.99).",
    )
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Share of inferences allowed to fail."
    )
    max_latency_ratio: float = Field(
        default=2.0,
        gt=0,
        le=1000,
        description="Candidate latency p95 may be at most this multiple of the active one's "
        "(both timed warm on the same replayed requests; judged on min_samples timings of each).",
    )
    watch_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="After activation, how long errors and latency are watched; a breach "
        "rolls back to the previous version automatically.",
    )
    watch_min_requests: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Requests needed in the watch window before a rollback can be decided.",
    )


class BatchingSettings(StrictModel):
    """Dynamic batching of concurrent requests (Triton's dynamic batcher is the model)."""

    max_batch_size: int = Field(
        default=8,
        ge=2,
        le=1024,
        description="Most rows (sum of the requests' first dimensions) run as one batch.",
    )
    max_queue_delay_ms: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="How long the oldest waiting request may be held for more to join when the "
        "batch is not full. 0: never wait, batch only what queued while the model was busy.",
    )


class ServingSettings(StrictModel):
    """How models are served."""

    isolation: Literal["auto", "process", "inline"] = Field(
        default="auto",
        description="`process` runs inference in a supervised worker process (a delegate that "
        "segfaults is contained, restarted and demoted); `inline` in the agent; `auto` isolates "
        "when an accelerator delegate is preferred.",
    )
    batching: BatchingSettings | None = Field(
        default=None,
        description="Off when absent. Models whose every input has an open batch dimension run "
        "concurrent requests of the same shape as one batch; other models are served as before.",
    )
    gates: SwapGateSettings = Field(
        default_factory=SwapGateSettings, description="Health gates of a model swap."
    )
    stall_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="A pipeline that has made no progress for this long counts as stuck: the "
        "systemd watchdog pings stop, so systemd restarts the agent.",
    )
    status_interval_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="How often the retained status and the telemetry report are published.",
    )
