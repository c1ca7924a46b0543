"""Config of sampled capture (``capture:``): which inferences are kept on disk, and their upload."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from edge_agent.config.base import StrictModel
from edge_agent.names import ServedName

_TIME_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class ReservoirSettings(StrictModel):
    """Keep a uniform random sample of fixed size from every time window."""

    size: int = Field(ge=1, le=10000, description="Samples kept per window.")
    window_s: float = Field(default=3600.0, gt=0.0, description="Window length (seconds).")


class LowConfidenceSettings(StrictModel):
    """Capture inferences near the decision threshold (where labels help most)."""

    max_confidence: float = Field(
        default=0.6,
        gt=0.0,
        le=1.0,
        description="Capture when the top score is below this.",
    )
    max_margin: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Also capture when top-1 minus top-2 score is below this.",
    )
    rate: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Share of qualifying inferences kept."
    )


class ByClassSettings(StrictModel):
    """Capture inferences predicted as given classes, at a rate per class."""

    rates: dict[str, float] = Field(
        description="Class (label, or index as a string) -> share kept, e.g. `{person: 0.1}`."
    )

    @field_validator("rates")
    @classmethod
    def _rates_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not 0.0 < v <= 1.0]
        if bad:
            raise ValueError(f"rates must be in (0, 1]; wrong for {', '.join(bad)}")
        return value


class DriftCaptureSettings(StrictModel):
    """While a drift alarm is raised (the agent calls the capturer), capture at a rate."""

    rate: float = Field(default=0.05, gt=0.0, le=1.0, description="Share captured meanwhile.")
    max_samples: int = Field(
        default=500, ge=1, description="At most this many per alarm (then it waits for the next)."
    )


class UploadSettings(StrictModel):
    """Background upload of captured samples to the monitor over MQTT."""

    enabled: bool = Field(default=True, description="Upload when connected.")
    chunk_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Payload bytes per MQTT message.",
    )
    inflight_chunks: int = Field(
        default=8, ge=1, le=1000, description="Chunks published before waiting for PUBACKs."
    )
    max_bytes_per_s: float | None = Field(
        default=None, gt=0.0, description="Bandwidth cap (payload bytes/s); unset: none."
    )
    only_on_mains: bool = Field(
        default=False,
        description="Upload only while on mains power (no discharging battery).",
    )
    time_window: str | None = Field(
        default=None,
        description="Local time window `HH:MM-HH:MM` for uploads (may span midnight, e.g. "
        "`22:00-06:00`); unset: any time.",
    )
    delete_after_upload: bool = Field(
        default=False, description="Delete a sample once the broker acknowledged all of it."
    )

    @field_validator("time_window")
    @classmethod
    def _window_format(cls, value: str | None) -> str | None:
        if value is not None and not _TIME_WINDOW.match(value):
            raise ValueError("time_window is `HH:MM-HH:MM` in 24 h local time, e.g. 22:00-06:00")
        return value


class CaptureSettings(StrictModel):
    """Sampled capture of inputs and outputs to disk, and their upload."""

    enabled: bool = Field(default=False, description="Capture samples.")
    dir: Path | None = Field(
        default=None, description="Sample store folder; default: `<store_dir>/samples`."
    )
    models: list[ServedName] = Field(
        default_factory=list, description="Models to capture from; empty: every served model."
    )
    max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes of payload files kept at most; the oldest samples are dropped "
        "(and counted) beyond it.",
    )
    max_age_s: float | None = Field(
        default=7 * 24 * 3600.0, gt=0.0, description="Samples older than this are dropped."
    )
    queue_size: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Samples waiting for the disk writer; beyond it new ones are dropped "
        "(counted) so inference never waits for the disk.",
    )
    random_rate: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Capture this share of all inferences."
    )
    reservoir: ReservoirSettings | None = Field(
        default=None, description="A fixed-size uniform sample per window."
    )
    low_confidence: LowConfidenceSettings | None = Field(
        default=None, description="Capture uncertain predictions."
    )
    by_class: ByClassSettings | None = Field(
        default=None, description="Capture by predicted class."
    )
    on_drift: DriftCaptureSettings | None = Field(
        default_factory=DriftCaptureSettings,
        description="Capture while a drift alarm is raised (unset: off).",
    )
    on_demand_max: int = Field(
        default=1000,
        ge=0,
        description="Largest `sample-now` request honoured (0: on-demand capture off).",
    )
    scores_output: str | None = Field(
        default=None,
        description="Output holding class scores for the confidence and class strategies; "
        "default: the first output.",
    )
    upload: UploadSettings = Field(default_factory=UploadSettings, description="Upload.")
