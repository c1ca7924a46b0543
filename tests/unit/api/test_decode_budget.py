"""JSON decoding shares one byte budget across the API's threads.

Regression: an all-JSON body decodes to up to sixteen times its size (orjson), and every one of
``max_connections`` requests decoded at once: 32 bodies of 8 MiB could ask for 4 GiB."""

from __future__ import annotations

import threading
import time

import pytest

from edge_agent.api.budget import DecodeBudget
from edge_agent.errors import HttpError


def test_decodes_over_the_budget_wait_for_each_other() -> None:
    budget = DecodeBudget(capacity=100, wait_s=5)
    peak, order = [0], []

    def decode(name: str, size: int) -> None:
        with budget.hold(size):
            peak[0] = max(peak[0], budget.in_use)
            order.append(f"{name} in")
            time.sleep(0.2)
            order.append(f"{name} out")

    threads = [threading.Thread(target=decode, args=(n, 60)) for n in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 60 and budget.in_use == 0
    for i in range(0, 6, 2):  # never two at once: each one's "in" is followed by its "out"
        assert order[i].split()[0] == order[i + 1].split()[0], order


def test_small_decodes_share_the_budget_at_once() -> None:
    budget = DecodeBudget(capacity=100, wait_s=5)
    with budget.hold(40), budget.hold(40):
        assert budget.in_use == 80
    assert budget.in_use == 0


def test_a_decode_that_waits_too_long_is_answered_503_and_frees_nothing_it_did_not_take() -> None:
    budget = DecodeBudget(capacity=100, wait_s=0.1)
    with budget.hold(100):
        with pytest.raises(HttpError) as refused, budget.hold(1):
            pass
        assert refused.value.status == 503 and "binary extension" in str(refused.value)
        assert budget.in_use == 100
    assert budget.in_use == 0


def test_a_failing_decode_gives_its_bytes_back() -> None:
    budget = DecodeBudget(capacity=100, wait_s=0.1)
    with pytest.raises(ValueError), budget.hold(70):
        raise ValueError("bad body")
    with budget.hold(100):
        assert budget.in_use == 100
