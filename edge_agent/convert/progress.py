"""Progress bars for the slow steps (calibration, conversion, evaluation), on stderr.

Bars go to stderr so that ``--json`` output on stdout stays clean; they draw only on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

Advance = Callable[[int], None]
"""Called with the number of steps just done."""


def _progress(console: Console | None) -> Progress:
    console = console or Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


@contextmanager
def steps(description: str, total: int | None, console: Console | None = None) -> Iterator[Advance]:
    """A bar of ``total`` steps (a spinner when ``total`` is None); yields ``advance(n)``."""
    with _progress(console) as progress:
        task = progress.add_task(description, total=total)

        def advance(count: int = 1) -> None:
            progress.advance(task, count)

        yield advance
        if total is None:
            progress.update(task, total=1, completed=1)
