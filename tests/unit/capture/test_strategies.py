import random

import numpy as np
import pytest

from edge_agent.capture.strategies import (
    Countdown,
    Reservoir,
    class_scores,
    is_low_confidence,
    resolve_class_rates,
    top_two,
)
from edge_agent.config import LowConfidenceSettings


def test_class_scores_only_for_classifier_outputs():
    assert class_scores({"p": np.array([[0.2, 0.8]], np.float32)}, None).shape == (2,)
    assert class_scores({"p": np.zeros((1, 4, 4), np.float32)}, None) is None
    assert class_scores({"p": np.zeros((1, 3), np.int8)}, None) is None
    assert class_scores({"a": np.zeros(1), "b": np.zeros(3)}, "b") is not None


def test_top_two_and_the_low_confidence_rules():
    assert top_two(np.array([0.1, 0.6, 0.3])) == (1, 0.6, 0.3)
    assert top_two(np.array([0.9, 0.1])) == (0, 0.9, 0.1)
    rules = LowConfidenceSettings(max_confidence=0.5, max_margin=0.2)
    assert is_low_confidence(0.45, 0.40, rules)
    assert is_low_confidence(0.55, 0.40, rules)  # margin 0.15
    assert not is_low_confidence(0.8, 0.1, rules)
    assert not is_low_confidence(0.55, 0.40, LowConfidenceSettings(max_confidence=0.5))


def test_class_rates_by_label_or_index():
    assert resolve_class_rates({"cat": 0.5, "2": 1.0}, ["dog", "cat"]) == {1: 0.5, 2: 1.0}
    with pytest.raises(ValueError, match="bird"):
        resolve_class_rates({"bird": 0.5}, ["dog", "cat"])


def test_reservoir_keeps_exactly_size_items_per_window_uniformly():
    now = [0.0]
    windows: list[list[int]] = []
    reservoir = Reservoir(10, 100.0, lambda: now[0], windows.append, random.Random(7))
    counts = np.zeros(1000)
    for trial in range(200):
        for i in range(1000):
            reservoir.offer(lambda i=i: i)
        now[0] += 100.0
        reservoir.offer(lambda: -1)  # opens the next window, flushing the last one
        assert len(windows[-1]) == 10 and len(set(windows[-1])) == 10
        counts[windows[-1]] += 1
        del trial
    # 2000 picks over 1000 items: each item is picked ~2 times; the first and second
    # halves of the stream are equally likely (algorithm R is uniform, not biased early).
    assert abs(counts[:500].sum() - counts[500:].sum()) < 200
    reservoir.close_window()
    assert windows[-1] == [-1]


def test_reservoir_copies_only_kept_items():
    made = []
    reservoir = Reservoir(2, 10.0, lambda: 0.0, lambda _: None, random.Random(1))
    for i in range(1000):
        reservoir.offer(lambda i=i: made.append(i) or i)
    assert len(made) < 40  # ~ 2 * ln(500) replacements, not 1000 copies


def test_countdown_on_demand_and_at_a_rate():
    countdown = Countdown()
    assert not countdown.take()
    countdown.arm(3)
    assert [countdown.take() for _ in range(5)] == [True, True, True, False, False]
    countdown.arm(1000, rate=0.1, seed=3)
    taken = sum(countdown.take() for _ in range(2000))
    assert 150 < taken < 250
    countdown.disarm()
    assert not countdown.take()
