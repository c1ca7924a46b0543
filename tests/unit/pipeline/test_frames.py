import threading

import numpy as np

from edge_agent.pipeline.frames import Frame, FrameQueue, RateLimiter


def frame(i: int) -> Frame:
    return Frame(np.zeros((1,)), str(i))


def test_full_live_queue_drops_the_oldest_and_counts_it():
    q = FrameQueue(2)
    for i in range(5):
        assert q.put(frame(i))
    assert q.dropped == 3
    assert [q.get(0).frame_id, q.get(0).frame_id] == ["3", "4"]
    assert q.get(0.01) is None


def test_blocking_put_waits_for_room_and_loses_nothing():
    q = FrameQueue(1)
    q.put(frame(0))
    assert not q.put(frame(1), block=True, timeout=0.05)
    taker = threading.Timer(0.05, lambda: q.get(1))
    taker.start()
    assert q.put(frame(1), block=True, timeout=2)
    taker.join()
    assert q.dropped == 0 and q.get(0).frame_id == "1"


def test_closed_queue_refuses_puts_and_wakes_readers():
    q = FrameQueue(1)
    threading.Timer(0.05, q.close).start()
    assert q.get(5) is None
    assert not q.put(frame(0))


def test_rate_limiter_caps_a_30fps_stream_at_10fps():
    limiter = RateLimiter(10)
    passed = sum(limiter.allow(i / 30) for i in range(300))  # 10 s at 30 fps
    assert 99 <= passed <= 101


def test_rate_limiter_after_a_pause_does_not_burst():
    limiter = RateLimiter(10)
    assert limiter.allow(0.0)
    assert limiter.allow(5.0)
    assert not limiter.allow(5.01)


def test_rate_limiter_paces_files():
    limiter = RateLimiter(4)
    assert limiter.wait_s(0.0) == 0.0
    assert abs(limiter.wait_s(0.0) - 0.25) < 1e-9
    assert RateLimiter(None).wait_s(0.0) == 0.0 and RateLimiter(None).allow(0.0)
