"""The one wait helper (tests/fixtures/wait.py): returns what it waited for, or says what
timed out."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.fixtures.wait import wait_for


def test_returns_the_first_truthy_value_without_waiting_longer():
    polls = itertools.count()
    started = time.monotonic()
    assert wait_for(lambda: next(polls) >= 3 and "ready", 5, "three polls") == "ready"
    assert time.monotonic() - started < 1  # fast first polls: 5 + 10 + 20 ms


def test_a_timeout_raises_and_names_what_it_waited_for():
    with pytest.raises(AssertionError, match=r"timed out after 0.05 s waiting for the broker"):
        wait_for(lambda: None, 0.05, "the broker")


def test_the_description_may_be_built_at_the_timeout():
    state = {"seen": 0}

    def poll() -> bool:
        state["seen"] += 1
        return False

    with pytest.raises(AssertionError) as raised:
        wait_for(poll, 0.05, lambda: f"{state['seen']} polls")
    assert f"{state['seen']} polls" in str(raised.value) and state["seen"] >= 2


def test_the_condition_is_checked_once_more_at_the_deadline():
    deadline = time.monotonic() + 0.03
    assert wait_for(lambda: time.monotonic() >= deadline, 0.03, "the deadline")
