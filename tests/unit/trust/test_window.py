"""The adaptive chunk window: twice bandwidth x (round trip + allowance), within floor and cap.

A simulated link (a rate and a round trip, no clock, no broker) drives ``WindowControl`` the
way a transfer does: a range request is answered one round trip later, then its chunks land
at the link's rate while the window allows.
"""

from __future__ import annotations

import pytest

from edge_agent.trust.device.window import FIRST_FRAME_BYTES, WindowControl

CHUNK = 64 * 1024


def drive(
    control: WindowControl,
    rate: float,
    rtt: float,
    seconds: float,
    start: float = 0.0,
    chunk: int = CHUNK,
):
    """Feed ``control`` what a link of ``rate`` B/s and ``rtt`` s delivers; returns the end.

    Each turn asks for a window's worth (one range), which starts landing a round trip later
    and lands at the rate, or faster when the window, not the link, is the limit.
    """
    now = start
    while now < start + seconds:
        sent = now
        window = control.window
        per_chunk = chunk / rate
        now = sent + rtt + per_chunk
        control.round_trip(now, sent)
        control.landed(now, chunk)
        for _ in range(window - 1):
            now += per_chunk
            control.landed(now, chunk)
    return now


def bdp_chunks(rate: float, rtt: float) -> float:
    return rate * rtt / CHUNK


@pytest.mark.parametrize(
    ("rate", "rtt"),
    [(250e3, 0.3), (2e6, 0.05), (12.5e6, 0.02), (2e6, 0.3)],
    ids=["2mbit-300ms", "16mbit-50ms", "100mbit-20ms", "16mbit-300ms"],
)
def test_the_window_settles_near_twice_bandwidth_times_round_trip(rate, rtt):
    control = WindowControl(CHUNK, floor=4, cap=256)
    drive(control, rate, rtt, seconds=60)
    # the measured round trip holds one chunk's time on the link as well
    expected = 2 * rate * (rtt + CHUNK / rate + control.allowance_s) / CHUNK + 2
    assert control.window == pytest.approx(max(4, expected), rel=0.35)
    assert control.window >= bdp_chunks(rate, rtt)  # never below what fills the link


def test_the_window_starts_small_and_grows_to_a_fast_long_link():
    control = WindowControl(CHUNK, floor=4, cap=256)
    assert control.window == 8  # 512 KiB: a modem's buffer at 16 Mbit/s overflowed at 1 MiB
    assert WindowControl(16 * 1024, floor=2, cap=256).window == 32  # 512 KiB of small units
    drive(control, rate=12.5e6, rtt=0.1, seconds=5)
    assert control.window > 16 * 2  # more than the old fixed 16 x 256 KiB could carry


def test_the_window_shrinks_when_the_link_slows_down():
    control = WindowControl(CHUNK, floor=4, cap=256, rate_intervals=4)
    end = drive(control, rate=12.5e6, rtt=0.05, seconds=10)
    fast = control.window
    drive(control, rate=250e3, rtt=0.05, seconds=30, start=end)
    assert control.window < fast / 4
    assert control.window <= max(4, round(2 * 250e3 * (0.1 + CHUNK / 250e3) / CHUNK + 2) + 1)


def test_the_window_stays_within_floor_and_cap():
    tiny = WindowControl(CHUNK, floor=4, cap=64)
    drive(tiny, rate=10e3, rtt=0.001, seconds=60)
    assert tiny.window == 4
    huge = WindowControl(CHUNK, floor=4, cap=64)
    drive(huge, rate=1e9, rtt=0.5, seconds=20)
    assert huge.window == 64


def test_a_pause_is_not_measured_as_a_slow_link():
    """A reconnect or a budget pause leaves the window as the link made it."""
    control = WindowControl(CHUNK, floor=4, cap=256)
    end = drive(control, rate=2e6, rtt=0.05, seconds=10)
    before = control.window
    control.idle(end)
    drive(control, rate=2e6, rtt=0.05, seconds=2, start=end + 30)  # 30 s of silence
    assert control.window >= before - 1


def test_a_fixed_window_never_moves():
    control = WindowControl(CHUNK, floor=16, cap=16)
    drive(control, rate=250e3, rtt=0.3, seconds=20)
    assert control.window == 16


def test_a_floor_above_the_cap_is_refused():
    with pytest.raises(ValueError, match="floor"):
        WindowControl(CHUNK, floor=8, cap=4)


def test_frames_are_about_five_ms_of_the_link_and_tile_a_chunk():
    unit, chunk = 16 * 1024, 256 * 1024
    control = WindowControl(unit, floor=2, cap=256, max_frame=chunk)
    assert control.frame_bytes() == FIRST_FRAME_BYTES  # nothing measured yet
    drive_frames(control, rate=2e6)  # 16 Mbit/s: 10 KB in 5 ms
    assert control.frame_bytes() == unit
    drive_frames(control, rate=12.5e6)  # 100 Mbit/s: 62 KB in 5 ms
    assert control.frame_bytes() == 64 * 1024
    fast = WindowControl(unit, floor=2, cap=256, max_frame=chunk)
    drive_frames(fast, rate=1e9)
    assert fast.frame_bytes() == chunk  # never more than a chunk
    odd = WindowControl(unit, floor=2, cap=256, max_frame=3 * unit)
    drive_frames(odd, rate=1e9)
    assert odd.frame_bytes() == unit  # only sizes that divide the chunk: frames tile it


def test_the_window_stays_within_a_slow_links_buffer():
    """Regression: twice (round trip + 50 ms) plus two chunks overflowed a 16 Mbit/s modem's
    50 ms buffer (100 KB); packets behind each drop waited out of order, and a cut lost them."""
    unit, chunk = 16 * 1024, 256 * 1024
    control = WindowControl(unit, floor=2, cap=256, max_frame=chunk)
    drive(control, rate=2e6, rtt=0.005, seconds=10, chunk=unit)
    assert control.window * unit <= 2e6 * 0.05 + 32 * 1024  # the buffer, and the frame landing


def drive_frames(control: WindowControl, rate: float) -> None:
    drive(control, rate, rtt=0.01, seconds=2, chunk=control.unit_bytes)
