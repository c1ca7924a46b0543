"""A command that uses the link on a metered plan: wait for a link window, or say it is closed.

``models pull --link-window`` shares the agent's :class:`~edge_agent.transport.budget.LinkBudget`
(``link.windows``). Outside every window the command waits *before* it connects, so nothing is
fetched and no MQTT session idles for hours; with ``--no-wait`` it exits with
:data:`EXIT_OUTSIDE_WINDOWS` instead, for a cron job that tries again later. Once running, the
transfer itself pauses when a window closes (``trust/device/transfer.py``); :func:`pause_notices`
only says so on stderr, since a paused bar and a stuck one look alike.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from edge_agent.transport.budget import LinkBudget, minutes_until_open

__all__ = ["EXIT_OUTSIDE_WINDOWS", "next_opening", "pause_notices", "wait_for_window"]

EXIT_OUTSIDE_WINDOWS = 75
"""Exit status of ``--no-wait`` outside every window: sysexits' EX_TEMPFAIL (try again later),
distinct from 1 (an update failed) and 2 (a usage or config error)."""

_MAX_SLEEP_S = 60.0
"""Longest sleep between looks at the clock: a clock set by NTP or a DST change mid-wait
moves the opening, and the wait follows it within a minute."""


def next_opening(budget: LinkBudget, now: datetime.datetime) -> tuple[str, float]:
    """When the nearest window of ``budget`` opens after local time ``now``: (``"HH:MM"``, s).

    Pure; the seconds are 0.0 inside a window (or with no windows).
    """
    minute = now.hour * 60 + now.minute
    wait = minutes_until_open(budget.windows, minute)
    opens = (minute + wait) % (24 * 60)
    seconds = 0.0 if wait == 0 else wait * 60 - now.second - now.microsecond / 1e6
    return f"{opens // 60:02d}:{opens % 60:02d}", seconds


def wait_for_window(
    budget: LinkBudget,
    *,
    no_wait: bool,
    say: Callable[[str], None] = lambda text: click.echo(text, err=True),
    now: Callable[[], datetime.datetime] = datetime.datetime.now,
    sleep: Callable[[float], object] | None = None,
) -> None:
    """Return once a window of ``budget`` is open (at once when one is, or there are none).

    Says once on stderr what it waits for and until when. Raises SystemExit with
    :data:`EXIT_OUTSIDE_WINDOWS` when ``no_wait`` and every window is closed.

    By default it sleeps on an Event rather than with ``time.sleep``: the same wait, but
    ``time.sleep`` fails with EINVAL under libfaketime 0.9.10 on Python 3.11 (an absolute
    monotonic deadline for ``clock_nanosleep``), and the test that runs this wait for real
    fakes the time of day.
    """
    sleep = sleep or threading.Event().wait
    announced = False
    while (closed := budget.closed()) is not None:
        opens, seconds = next_opening(budget, now())
        if no_wait:
            click.secho(
                f"error: {closed}; not pulling (--no-wait); the next window opens at {opens} "
                "local time",
                fg="red",
                err=True,
            )
            raise SystemExit(EXIT_OUTSIDE_WINDOWS)
        if not announced:
            say(f"{closed}; waiting until {opens} local time")
            announced = True
        sleep(min(_MAX_SLEEP_S, max(0.05, seconds)))
    if announced:
        say("link window open; pulling")


@contextmanager
def pause_notices(
    budget: LinkBudget,
    say: Callable[[str], None],
    poll_s: float = 1.0,
    now: Callable[[], datetime.datetime] = datetime.datetime.now,
) -> Iterator[None]:
    """While the body runs, say when the link windows pause the transfer and when it resumes.

    Nothing to say (and no thread) when ``budget`` has no windows.
    """
    if not budget.windows:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        paused = False
        while not stop.wait(poll_s):
            closed = budget.closed()
            if closed is not None and not paused:
                opens, _ = next_opening(budget, now())
                say(f"{closed}; download paused until {opens} local time")
            elif closed is None and paused:
                say("link window open; download resumed")
            paused = closed is not None

    thread = threading.Thread(target=watch, name="link-window-notices", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
