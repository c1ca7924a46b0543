"""CLI options that take their default and range from a config settings field.

A command-line option that tunes the same thing as a config key must not retype its default or
its bounds (the copies drift); it asks the settings class instead.
"""

from __future__ import annotations

import annotated_types
import click

from edge_agent.config.base import StrictModel


def field_range(model: type[StrictModel], name: str) -> click.IntRange | click.FloatRange:
    """A click range type with the bounds (``ge``/``gt``/``le``/``lt``) of ``model.name``."""
    field = model.model_fields[name]
    low: float | None = None
    high: float | None = None
    low_open = high_open = False
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            low = rule.ge  # type: ignore[assignment]
        elif isinstance(rule, annotated_types.Gt):
            low, low_open = rule.gt, True  # type: ignore[assignment]
        elif isinstance(rule, annotated_types.Le):
            high = rule.le  # type: ignore[assignment]
        elif isinstance(rule, annotated_types.Lt):
            high, high_open = rule.lt, True  # type: ignore[assignment]
    if field.annotation is int:
        as_int = [None if bound is None else int(bound) for bound in (low, high)]
        return click.IntRange(as_int[0], as_int[1], min_open=low_open, max_open=high_open)
    return click.FloatRange(low, high, min_open=low_open, max_open=high_open)
