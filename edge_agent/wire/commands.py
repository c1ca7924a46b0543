"""Commands on ``ea/v1/<device>/cmd``: what anyone allowed to publish there may ask a device.

``{"command": "status" | "reload" | "sample-now", "count": n, "model": "name"}``. Commands ask
for things (a status, a reload of the local config, samples); none installs anything, models
only arrive through the signed registry. ``count`` is clamped to [1, MAX_SAMPLES_PER_COMMAND].
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from edge_agent.errors import WireError
from edge_agent.wire._clean import loads_object, text
from edge_agent.wire._document import Document

COMMANDS = ("status", "reload", "sample-now")
MAX_SAMPLES_PER_COMMAND = 1000

CommandName = Literal["status", "reload", "sample-now"]


def _count(value: Any) -> int:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"count {value[:40]!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"count {str(value)[:40]!r} is not a number")
    if value != value:  # NaN
        raise ValueError("count NaN is not a number")
    return int(max(1, min(value, MAX_SAMPLES_PER_COMMAND)))


class Command(Document):
    """A command that parsed; ``count`` and ``model`` only matter for ``sample-now``."""

    WHAT = "command"

    name: CommandName = Field(alias="command")
    count: Annotated[int, BeforeValidator(_count)] = 1
    model: Annotated[
        str | None,
        BeforeValidator(lambda value: text(value, 128) if isinstance(value, str) else None),
    ] = None

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview | str) -> Command:
        """The command in ``payload``; WireError says why it is refused."""
        document = loads_object(payload, "command")
        name = document.get("command")
        if name not in COMMANDS:
            raise WireError(
                "unknown_command",
                f"unknown command {str(name)[:40]!r} (known: {', '.join(COMMANDS)})",
            )
        return cls.from_object(document, cleaned=True)
