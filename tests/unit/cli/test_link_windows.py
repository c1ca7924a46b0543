"""``models pull --link-window``: when it waits, for how long, what it says, and bad windows."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.cli._link_windows import (
    EXIT_OUTSIDE_WINDOWS,
    next_opening,
    pause_notices,
    wait_for_window,
)
from edge_agent.transport.budget import LinkBudget
from tests.fixtures.wait import wait_for


class Day:
    """A local wall clock that only moves when something sleeps."""

    def __init__(self, hhmmss: str) -> None:
        hours, minutes, seconds = map(int, hhmmss.split(":"))
        self.now = datetime.datetime(2026, 11, 30, hours, minutes, seconds)
        self.slept: list[float] = []

    def __call__(self) -> datetime.datetime:
        return self.now

    def minute(self) -> int:
        return self.now.hour * 60 + self.now.minute

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += datetime.timedelta(seconds=seconds)


def test_next_opening_counts_the_seconds_to_the_nearest_start():
    day = Day("00:59:50")
    budget = LinkBudget(None, ["01:00-05:00", "12:00-13:00"], minute_of_day=day.minute)
    assert next_opening(budget, day()) == ("01:00", pytest.approx(10.0))
    day.now = day.now.replace(hour=5, minute=0, second=0)  # closes at 05:00: next is noon
    assert next_opening(budget, day()) == ("12:00", pytest.approx(7 * 3600.0))
    day.now = day.now.replace(hour=2)
    assert next_opening(budget, day()) == ("02:00", 0.0)  # inside: open now, no wait


def test_waits_until_the_window_opens_saying_so_once():
    day = Day("22:58:30")
    budget = LinkBudget(None, ["23:00-02:00"], minute_of_day=day.minute)
    said: list[str] = []
    wait_for_window(budget, no_wait=False, say=said.append, now=day, sleep=day.sleep)
    assert said == [
        "outside the link windows (23:00-02:00); waiting until 23:00 local time",
        "link window open; pulling",
    ]
    assert day.now == day.now.replace(hour=23, minute=0, second=0, microsecond=0)
    assert max(day.slept) <= 60  # looks at the clock at least once a minute


def test_inside_a_window_or_without_windows_it_does_not_wait():
    day = Day("01:30:00")
    for windows in (["01:00-05:00"], []):
        said: list[str] = []
        budget = LinkBudget(None, windows, minute_of_day=day.minute)
        wait_for_window(budget, no_wait=True, say=said.append, now=day, sleep=day.sleep)
        assert said == [] and day.slept == []


def test_no_wait_outside_every_window_exits_with_its_own_status(capsys: pytest.CaptureFixture):
    day = Day("12:00:00")
    budget = LinkBudget(None, ["01:00-05:00"], minute_of_day=day.minute)
    with pytest.raises(SystemExit) as exited:
        wait_for_window(budget, no_wait=True, now=day, sleep=day.sleep)
    assert exited.value.code == EXIT_OUTSIDE_WINDOWS not in (0, 1, 2)
    assert capsys.readouterr().err.strip() == (
        "error: outside the link windows (01:00-05:00); not pulling (--no-wait); the next "
        "window opens at 01:00 local time"
    )
    assert day.slept == []


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--link-window", "25:00-01:00", "link window '25:00-01:00' is not `HH:MM-HH:MM`"),
        ("--link-window", "1:00-5:00", "link window '1:00-5:00' is not `HH:MM-HH:MM`"),
        ("--link-window", "01:00", "link window '01:00' is not `HH:MM-HH:MM`"),
        ("--window", "01:00-05:00", "the hours to download in are --link-window HH:MM-HH:MM"),
    ],
)
def test_a_bad_window_is_a_usage_error_naming_the_option(
    tmp_path: Path, option: str, value: str, message: str
):
    root = tmp_path / "root.json"
    root.write_text("{}")
    args = ["models", "pull", "--broker", "mqtt://127.0.0.1:9", "--root", str(root)]
    args += ["--device-id", "cam-1", "--store-dir", str(tmp_path / "s"), option, value]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and message in result.output
    assert not (tmp_path / "s").exists()  # refused before anything was opened


def test_a_window_closing_mid_pull_is_said_when_it_pauses_and_when_it_resumes():
    day = Day("04:59:00")
    budget = LinkBudget(None, ["01:00-05:00"], minute_of_day=day.minute)
    said: list[str] = []
    with pause_notices(budget, said.append, poll_s=0.01, now=day):
        day.now = day.now.replace(hour=5, minute=0)  # the window closes
        wait_for(lambda: len(said) == 1, 2, "the pause notice")
        day.now = day.now.replace(hour=1)  # the next night
        wait_for(lambda: len(said) == 2, 2, "the resume notice")
    assert said == [
        "outside the link windows (01:00-05:00); download paused until 01:00 local time",
        "link window open; download resumed",
    ]
