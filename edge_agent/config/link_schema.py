"""Config of the device's link budget (``link:``): a rate cap and the hours the link may be used.

Downloads from the registry and sample uploads share it (``edge_agent.transport.budget``).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from edge_agent.config.base import StrictModel
from edge_agent.config.capture_schema import _TIME_WINDOW


class LinkSettings(StrictModel):
    """A metered link: one rate cap and time windows for model downloads and sample uploads."""

    max_rate_kbps: float | None = Field(
        default=None,
        gt=0.0,
        description="Cap on model downloads and sample uploads together, in kilobits per "
        "second of payload (1 kbps = 1000 bit/s); unset: no cap. Telemetry and status are "
        "not counted.",
    )
    windows: list[str] = Field(
        default_factory=list,
        description="Local time windows `HH:MM-HH:MM` (may span midnight, e.g. `01:00-05:00`) "
        "when downloads and uploads may use the link; outside them a download pauses after "
        "the chunks already asked for and resumes when a window opens. Empty: any time.",
    )

    @field_validator("windows")
    @classmethod
    def _window_format(cls, windows: list[str]) -> list[str]:
        for window in windows:
            if not _TIME_WINDOW.match(window):
                raise ValueError(
                    f"link window {window!r} is not `HH:MM-HH:MM` in 24 h local time, "
                    "e.g. 01:00-05:00"
                )
        return windows

    @property
    def max_bytes_per_s(self) -> float | None:
        """The cap in payload bytes per second (None: no cap)."""
        return None if self.max_rate_kbps is None else self.max_rate_kbps * 1000 / 8
