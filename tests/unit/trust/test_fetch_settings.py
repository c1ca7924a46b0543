"""How a device splits its window into range requests, and what a range costs at the registry."""

from __future__ import annotations

import pytest

from edge_agent.config import FetchSettings
from edge_agent.fleet.registry import RegistrySettings, frames_in
from edge_agent.trust.protocol import ChunkRequest


@pytest.mark.parametrize(
    ("window", "per_request", "run"),
    [(16, 8, 8), (8, 8, 4), (2, 8, 1), (1, 8, 1), (32, 4, 4)],
)
def test_a_range_is_at_most_half_the_window_so_two_overlap(window, per_request, run):
    assert FetchSettings(window=window, chunks_per_request=per_request).run == run


def test_invalid_settings_name_the_field():
    with pytest.raises(ValueError, match="flush_interval_s"):
        FetchSettings(flush_interval_s=0)
    with pytest.raises(ValueError, match="max_range_bytes"):
        RegistrySettings(max_chunk_bytes=4096, max_range_bytes=1024)


def test_a_range_costs_one_token_per_frame():
    assert frames_in(ChunkRequest("00ff00ff", "targets/a/b", 0, 8 * 2048, 2048)) == 8
    assert frames_in(ChunkRequest("00ff00ff", "targets/a/b", 0, 8 * 2048 + 1, 2048)) == 9
    assert frames_in(ChunkRequest("00ff00ff", "targets/a/b", 0, 100)) == 1  # one frame


def test_default_rate_does_not_cap_one_device_below_the_transport():
    """The default limit allows >= 500 MB/s at the default chunk size (more than loopback MQTT)."""
    defaults = RegistrySettings()
    assert defaults.rate_per_device * FetchSettings().chunk_bytes >= 500e6
