"""Stable wave assignment by hash of the device id."""

from __future__ import annotations

import pytest

from edge_agent.delivery.waves import (
    bucket,
    check_waves,
    devices_through,
    partition,
    wave_of,
)
from edge_agent.errors import ConfigError

IDS = [f"dev-{i:04d}" for i in range(1000)]


def test_same_id_same_wave_across_runs() -> None:
    # Fixed expectations: a change of the hash would silently move devices between waves.
    assert bucket("dev-0000", "lab") == pytest.approx(bucket("dev-0000", "lab"))
    first = [wave_of(d, [5, 25, 100], "lab") for d in IDS]
    again = [wave_of(d, [5, 25, 100], "lab") for d in IDS]
    assert first == again
    assert 0.0 <= bucket("dev-0000", "lab") < 1.0


def test_bucket_is_pinned_to_sha256_of_salt_nul_id() -> None:
    import hashlib

    digest = hashlib.sha256(b"lab\0dev-0001").digest()
    assert bucket("dev-0001", "lab") == int.from_bytes(digest[:8], "big") / 2**64


def test_proportions_on_1000_ids() -> None:
    waves = partition(IDS, [5, 25, 100], "lab")
    sizes = [len(w) for w in waves]
    assert sum(sizes) == 1000
    assert 30 <= sizes[0] <= 70  # 5 % of 1000 = 50
    assert 160 <= sizes[0] + sizes[1] <= 340  # 25 %
    assert len(set().union(*map(set, waves))) == 1000


def test_salt_changes_the_canaries() -> None:
    a = set(partition(IDS, [5, 100], "lab")[0])
    b = set(partition(IDS, [5, 100], "other")[0])
    assert a != b


def test_waves_are_nested_as_percentages_grow() -> None:
    small = set(devices_through(IDS, [10, 100], "lab", 1))
    bigger = set(devices_through(IDS, [30, 100], "lab", 1))
    assert small <= bigger
    assert set(devices_through(IDS, [10, 100], "lab", 2)) == set(IDS)
    assert devices_through(IDS, [10, 100], "lab", 0) == []


@pytest.mark.parametrize("waves", [[], [5, 5, 100], [50, 25, 100], [5, 25], [0, 100], [5, 101]])
def test_bad_wave_lists_are_refused(waves: list[float]) -> None:
    with pytest.raises(ConfigError):
        check_waves(waves)


def test_single_wave_of_everything() -> None:
    assert check_waves([100]) == [100.0]
    assert {wave_of(d, [100], "x") for d in IDS} == {0}
