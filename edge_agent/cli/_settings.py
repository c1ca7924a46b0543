"""CLI options that take their default and range from a config settings field.

A command-line option that tunes the same thing as a config key must not retype its default or
its bounds (the copies drift); it asks the settings class instead.
"""

from __future__ import annotations

from typing import Any

import annotated_types
import click
from pydantic import ValidationError

from edge_agent.cli._params import StrParamType
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


class _FieldItem(StrParamType):
    """One item of a list field, checked by the settings class's own validators."""

    def __init__(self, model: type[StrictModel], name: str) -> None:
        self.model, self.field = model, name
        self.name = f"{model.__name__}.{name} item"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """``value`` if the settings class accepts it in the list; its message if not."""
        try:
            self.model.model_validate({self.field: [value]})
        except ValidationError as exc:
            messages = [str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()]
            self.fail("; ".join(messages), param, ctx)
        return str(value)


def field_item(model: type[StrictModel], name: str) -> StrParamType:
    """A click type for one item of the list field ``model.name`` (a repeatable option).

    The value is checked by building ``model`` with it, so the option refuses exactly what the
    config file would, with the same message, and no format is written here a second time.
    """
    return _FieldItem(model, name)
