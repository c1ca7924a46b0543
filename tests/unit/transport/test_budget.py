"""The link budget: one rate cap and time windows, shared by downloads and uploads."""

from __future__ import annotations

import pytest

from edge_agent.config import AgentConfig, LinkSettings
from edge_agent.transport.budget import LinkBudget, minutes_until_open, parse_time_window


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_windows_open_and_close_the_link_and_may_span_midnight():
    minute = [0]
    budget = LinkBudget(None, ["23:00-02:00", "12:00-12:30"], minute_of_day=lambda: minute[0])
    for hhmm, is_open in [
        ("23:30", True), ("01:59", True), ("02:00", False), ("11:59", False),
        ("12:00", True), ("12:30", False), ("22:59", False),
    ]:  # fmt: skip
        hours, minutes = map(int, hhmm.split(":"))
        minute[0] = hours * 60 + minutes
        assert (budget.closed() is None) is is_open, hhmm
    minute[0] = 6 * 60
    assert budget.closed() == "outside the link windows (23:00-02:00, 12:00-12:30)"


def test_minutes_until_open_picks_the_nearest_start_across_midnight():
    windows = [parse_time_window(w) for w in ["23:00-02:00", "12:00-12:30"]]
    for hhmm, minutes in [
        ("23:30", 0), ("01:59", 0), ("02:00", 600), ("11:59", 1), ("12:30", 630), ("22:59", 1),
    ]:  # fmt: skip
        hours, mins = map(int, hhmm.split(":"))
        assert minutes_until_open(windows, hours * 60 + mins) == minutes, hhmm
    assert minutes_until_open([], 600) == 0  # no windows: any time


def test_no_windows_means_any_time_and_no_cap_means_no_wait():
    budget = LinkBudget.unlimited()
    assert not budget.limited and budget.closed() is None
    assert budget.take(10**9) == 0.0 and budget.book(10**9) == 0.0


def test_downloads_and_uploads_draw_from_one_bucket():
    clock = Clock()
    budget = LinkBudget(100_000.0, burst_bytes=50_000, clock=clock)
    assert budget.take(50_000) == 0.0  # the burst
    assert budget.book(20_000) == pytest.approx(0.2)  # the uploader books into debt and waits
    assert budget.take(10_000) == pytest.approx(0.3)  # the download waits for the debt too
    clock.now = 0.3
    assert budget.take(10_000) == 0.0


def test_the_burst_is_a_quarter_second_of_the_rate_but_at_least_one_chunk():
    assert LinkBudget(1_000_000.0).burst_bytes == 250_000
    assert LinkBudget(10_000.0).burst_bytes == 64 * 1024


def test_link_settings_convert_kbps_and_refuse_a_malformed_window():
    assert LinkSettings(max_rate_kbps=800).max_bytes_per_s == 100_000
    with pytest.raises(ValueError, match="link window '1:00-5:00'"):
        LinkSettings(windows=["1:00-5:00"])
    config = AgentConfig(device_id="cam-1", link={"windows": ["01:00-05:00"]})
    assert config.link.windows == ["01:00-05:00"] and config.link.max_rate_kbps is None
