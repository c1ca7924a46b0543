"""The registry's notice on ``registry/notify``: "signed metadata changed, look again".

The registry publishes it (retained) whenever the TUF timestamp's version grows; agents treat
it as a nudge only (TUF decides what is new), so a forged or stale notice costs at most one
metadata refresh.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from edge_agent.wire._document import Document


class RegistryNotice(Document):
    """``{"timestamp_version": N}``: the version of the registry's newest ``timestamp.json``."""

    WHAT = "registry notice"

    timestamp_version: int

    @field_validator("timestamp_version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> int:
        if type(value) is not int or not 0 <= value < 2**62:
            raise ValueError("is not a whole number from 0")
        return value
