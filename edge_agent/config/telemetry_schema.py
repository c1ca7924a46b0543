"""Config of telemetry: latency reports, drift detection, the outbox and the power policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edge_agent.config.base import StrictModel

OutboxSynchronous = Literal["full", "normal"]


class LatencySettings(StrictModel):
    """Latency and load telemetry (per model and delegate)."""

    relative_accuracy: float = Field(
        default=0.01,
        gt=0.0,
        lt=0.5,
        description="DDSketch relative accuracy of latency quantiles (0.01: p99 within 1%).",
    )
    report_interval_s: float = Field(
        default=60.0,
        ge=1.0,
        le=86400.0,
        description="Seconds between telemetry reports (latency, throughput, sensors).",
    )


class DriftThresholds(StrictModel):
    """When a window statistic counts as drift.

    A feature drifts when any of its statistics crosses its threshold; an alarm clears when
    every statistic is below threshold x `clear_ratio`.
    """

    psi: float = Field(
        default=0.25,
        gt=0.0,
        description="Population stability index per feature (0.1 slight, 0.25 significant).",
    )
    ks: float = Field(
        default=1.95,
        gt=0.0,
        description="Kolmogorov-Smirnov coefficient c: a feature drifts when KS > c x "
        "sqrt((n+m)/(n m)) for window size n and reference size m (1.95: alpha about 0.001).",
    )
    wasserstein: float = Field(
        default=0.5,
        gt=0.0,
        description="Wasserstein-1 distance in units of the reference feature's std.",
    )
    prediction_psi: float = Field(
        default=0.25,
        gt=0.0,
        description="PSI of the predicted-class distribution and of the confidence histogram.",
    )
    nan_rate: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Share of samples with NaN/inf values."
    )
    out_of_range_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of samples with values outside the reference value range.",
    )
    constant_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of constant samples (every value equal: blank or frozen frames).",
    )
    min_features: int = Field(
        default=1,
        ge=1,
        description="Input drift needs at least this many features drifting in a window.",
    )


class DriftSettings(StrictModel):
    """Drift detection windows, thresholds and hysteresis (computed off the hot path)."""

    enabled: bool = Field(default=True, description="Profile windows and detect drift.")
    sample_rate: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Share of inferences whose inputs/outputs join drift windows.",
    )
    window_size: int = Field(
        default=200, ge=10, le=1_000_000, description="Samples per window (count window)."
    )
    window_s: float = Field(
        default=600.0,
        gt=0.0,
        description="A window also closes after this many seconds if it has `min_window` samples.",
    )
    min_window: int = Field(
        default=50, ge=1, description="Fewer samples than this never make a window."
    )
    queue_max: int = Field(
        default=1024,
        ge=1,
        description="Samples waiting for the drift worker; beyond it samples are dropped "
        "(counted), so the hot path never waits.",
    )
    raise_after: int = Field(
        default=2, ge=1, description="Consecutive drifting windows that raise an alarm."
    )
    clear_after: int = Field(
        default=2, ge=1, description="Consecutive calm windows that clear an alarm."
    )
    clear_ratio: float = Field(
        default=0.7,
        gt=0.0,
        le=1.0,
        description="A window is calm when every statistic is below threshold x this ratio.",
    )
    thresholds: DriftThresholds = Field(
        default_factory=DriftThresholds, description="Per-statistic thresholds."
    )


class OutboxSettings(StrictModel):
    """The on-disk store-and-forward queue (SQLite, WAL) in front of MQTT."""

    max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=64 * 1024,
        description="Payload bytes kept at most; beyond it the oldest records of the lowest "
        "priority are dropped (and counted).",
    )
    synchronous: OutboxSynchronous = Field(
        default="full",
        description="SQLite `synchronous` with WAL. `full`: a record acknowledged as queued "
        "survives kill -9 and power loss (one fsync per commit). `normal`: survives kill -9; "
        "power loss may lose the last commits (never corrupts the file).",
    )
    inflight: int = Field(
        default=64,
        ge=1,
        le=65535,
        description="QoS 1 publishes awaiting PUBACK at once.",
    )
    batch: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Records read from the outbox per step; smaller lets fresh "
        "high-priority records overtake a backlog sooner.",
    )


class PowerPolicySettings(StrictModel):
    """Battery / temperature driven throttling, with hysteresis."""

    enabled: bool = Field(default=False, description="Apply the power-aware policy.")
    battery_low_pct: float = Field(
        default=25.0,
        ge=0.0,
        le=100.0,
        description="At or below this battery % (while discharging) enter the saving mode.",
    )
    battery_recover_pct: float = Field(
        default=35.0,
        ge=0.0,
        le=100.0,
        description="Leave the battery saving mode only at or above this % (the resume "
        "threshold; charging alone does not end it: a weak panel at dawn says `charging` "
        "while the normal load still drains the battery).",
    )
    temp_high_c: float = Field(
        default=80.0, description="At or above this temperature (°C, hottest zone) throttle."
    )
    temp_recover_c: float = Field(
        default=70.0, description="Leave thermal throttling at or below this temperature (°C)."
    )
    normal_fps: float | None = Field(
        default=None, gt=0.0, description="Frame rate in normal mode (unset: unlimited)."
    )
    reduced_fps: float | None = Field(
        default=None, gt=0.0, description="Frame rate while saving/throttling (unset: keep)."
    )
    light_variant: str | None = Field(
        default=None,
        description="Name of a lighter model (from `models:`; `serve: false` there loads it "
        "only when swapped in) whose file is swapped in for "
        "the pipelines' models while saving or throttling, through the same swap gates as a "
        "delivered release (refused if it fails them), and swapped back after (unset: keep "
        "the model).",
    )
    check_interval_s: float = Field(
        default=5.0,
        ge=0.2,
        le=3600.0,
        description="Seconds between policy decisions (sensors are read at most this often "
        "for it; telemetry reports decide too).",
    )

    @model_validator(mode="after")
    def _hysteresis_bands(self) -> PowerPolicySettings:
        if self.battery_recover_pct < self.battery_low_pct:
            raise ValueError("battery_recover_pct must be >= battery_low_pct (hysteresis)")
        if self.temp_recover_c > self.temp_high_c:
            raise ValueError("temp_recover_c must be <= temp_high_c (hysteresis)")
        return self


class TelemetrySettings(StrictModel):
    """Telemetry, drift detection, the outbox and the power policy."""

    latency: LatencySettings = Field(
        default_factory=LatencySettings, description="Latency and load telemetry."
    )
    drift: DriftSettings = Field(default_factory=DriftSettings, description="Drift detection.")
    outbox: OutboxSettings = Field(
        default_factory=OutboxSettings, description="Store-and-forward outbox."
    )
    power: PowerPolicySettings = Field(
        default_factory=PowerPolicySettings, description="Power-aware policy."
    )
