"""When samples may be uploaded: pure decisions on power, time of day and bandwidth.

:func:`upload_blocked` combines them into one reason string (or None) so the uploader can
report *why* it is waiting; :class:`~edge_agent._retry.TokenBucket` paces bytes under
``max_bytes_per_s``.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.config import UploadSettings
from edge_agent.telemetry.sensors import PowerSupply
from edge_agent.transport.budget import in_time_window, parse_time_window

__all__ = ["in_time_window", "on_mains", "parse_time_window", "upload_blocked"]

_MAINS_TYPES = ("mains", "usb", "usb_pd", "usb_c", "ups")


def on_mains(supplies: Sequence[PowerSupply]) -> bool:
    """True when an external supply is online, or nothing says we run on a battery.

    A device without any battery is on mains; a battery reporting ``Discharging`` with no
    online external supply means it is not.
    """
    external = [s for s in supplies if (s.type or "").lower() in _MAINS_TYPES]
    if any(s.online for s in external):
        return True
    batteries = [s for s in supplies if (s.type or "").lower() == "battery"]
    if not batteries:
        return True
    return not any((b.status or "").lower() == "discharging" for b in batteries)


def upload_blocked(
    settings: UploadSettings, minute_of_day: int, supplies: Sequence[PowerSupply]
) -> str | None:
    """Why uploading must wait now, or None when it may go."""
    if not settings.enabled:
        return "upload disabled"
    if settings.time_window is not None and not in_time_window(
        parse_time_window(settings.time_window), minute_of_day
    ):
        return f"outside the upload window {settings.time_window}"
    if settings.only_on_mains and not on_mains(supplies):
        return "on battery (only_on_mains)"
    return None
