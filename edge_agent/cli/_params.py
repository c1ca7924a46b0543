"""Click parameter types for names: a bad ``--device-id`` is a usage error (exit 2), not a crash.

Each type checks with the rule in :mod:`edge_agent.names`, the same rule the config, the topic
scheme, manifests and rollout documents apply, so the command line refuses exactly what they
would refuse later, and says so before anything is opened or sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from edge_agent import names
from edge_agent.names import NameRule

if TYPE_CHECKING:  # generic only from click 8.2 on; pyproject allows 8.1
    StrParamType = click.ParamType[str]
else:
    StrParamType = click.ParamType


class NameParam(StrParamType):
    """A string that must follow one :class:`~edge_agent.names.NameRule`."""

    def __init__(self, rule: NameRule) -> None:
        """``rule``: the name rule values are checked with."""
        self.rule = rule
        self.name = rule.what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """``value`` if it follows the rule; a usage error naming the option and rule if not."""
        if not self.rule.matches(value):
            self.fail(self.rule.message(value), param, ctx)
        return str(value)


DEVICE_ID = NameParam(names.DEVICE_ID)
MODEL_NAME = NameParam(names.MODEL_NAME)
SERVED_NAME = NameParam(names.SERVED_NAME)
GROUP = NameParam(names.GROUP)
SHARE_GROUP = NameParam(names.SHARE_GROUP)
VERSION = NameParam(names.VERSION)
