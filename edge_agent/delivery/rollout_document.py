"""The signed rollout document ``rollouts/<group>.json``: what devices of a group should run.

A rollout document is a TUF target of the delegated ``rollouts`` role (whose key may live
online on the controller), so a device trusts it exactly as far as TUF verifies it: MQTT only
carries the bytes. It says, for one device group and one model: the release to roll out, the
release to stay on or return to, the cumulative wave percentages, when each wave opened, and
the rollout's state. Each controller step that changes what devices should do publishes a new
version of the same target path (a new hash, a new ``rollouts`` metadata version).

::

    {"schema": 1, "id": "r-...", "group": "lab", "model": "digits", "release": 3,
     "previous": 2, "waves": [5, 25, 100], "opened": [1767225600.0], "salt": "lab",
     "state": "rolling", "reason": "wave 1 of 3 opened", "issued_at": 1767225600.0}

States devices act on: ``rolling`` / ``paused`` (devices in opened waves run ``release``, the
rest ``previous``), ``completed`` (everyone runs ``release``), ``rolled_back`` (everyone runs
``previous``; devices that ran ``release`` roll back to ``previous`` without rejecting it: only
a failure on the device itself bans a release there, so a later rollout can retry it).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from edge_agent.delivery.waves import check_waves
from edge_agent.errors import UpdateError
from edge_agent.names import GROUP, MODEL_NAME

SCHEMA = 1
ROLLOUTS_PREFIX = "rollouts"
MAX_DOCUMENT_BYTES = 64 * 1024
"""A rollout document larger than this is refused before it is read (devices fetch it)."""
STATES = ("rolling", "paused", "completed", "rolled_back")


def check_group(group: str) -> str:
    """``group`` if it follows :data:`edge_agent.names.GROUP`; UpdateError otherwise."""
    return GROUP.check(group, error=UpdateError)


def rollout_target_path(group: str) -> str:
    """``rollouts/<group>.json``: the one target a group's devices look up."""
    return f"{ROLLOUTS_PREFIX}/{check_group(group)}.json"


@dataclass(frozen=True)
class RolloutDocument:
    """What the signed ``rollouts/<group>.json`` says (see the module docstring)."""

    id: str
    group: str
    model: str
    release: int
    previous: int | None
    waves: tuple[float, ...]
    salt: str
    state: str = "rolling"
    opened: tuple[float, ...] = ()
    reason: str = ""
    issued_at: float = 0.0
    schema: int = field(default=SCHEMA)

    def __post_init__(self) -> None:
        problems = []
        for name in ("id", "group", "model", "salt", "state", "reason"):
            value = getattr(self, name)
            if not isinstance(value, str):
                problems.append(f"{name} {value!r:.40} is not a string")
            elif "\x00" in value:
                problems.append(f"{name} holds a NUL character")
            elif not value.isascii() and not _utf8(value):  # the salt is hashed as UTF-8
                problems.append(f"{name} holds a lone surrogate (not UTF-8)")
        if problems:  # the checks below assume strings
            raise UpdateError(f"invalid rollout document: {'; '.join(problems)}")
        if not _finite(self.issued_at):
            problems.append(f"issued_at {self.issued_at!r:.40} is not a finite number")
        if not all(_finite(t) for t in self.opened):
            problems.append("opened holds a time that is not a finite number")
        if self.schema != SCHEMA:
            problems.append(f"schema {self.schema!r} is not {SCHEMA} (upgrade edge-agent)")
        if not GROUP.matches(self.group):
            problems.append(GROUP.message(self.group, "group"))
        if not MODEL_NAME.matches(self.model):
            problems.append(MODEL_NAME.message(self.model, "model"))
        if not _release_number(self.release):
            problems.append(f"release {self.release!r} is not a release number >= 1")
        if self.previous is not None and not _release_number(self.previous):
            problems.append(f"previous {self.previous!r} is not a release number >= 1")
        if self.previous is not None and self.previous == self.release:
            problems.append("previous and release are the same release")
        if self.state not in STATES:
            problems.append(f"state {self.state!r} is not one of {', '.join(STATES)}")
        if len(self.opened) > len(self.waves):
            problems.append(f"{len(self.opened)} waves opened but only {len(self.waves)} exist")
        if not self.id or len(self.id) > 64:
            problems.append("id must be 1-64 characters")
        try:
            check_waves(self.waves)
        except Exception as exc:
            problems.append(str(exc))
        if problems:
            raise UpdateError(f"invalid rollout document: {'; '.join(problems)}")

    @property
    def target_path(self) -> str:
        """Where this document is published."""
        return rollout_target_path(self.group)

    def evolve(self, **changes: Any) -> RolloutDocument:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def to_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): same document, same hash."""
        doc = asdict(self)
        doc["waves"], doc["opened"] = list(self.waves), list(self.opened)
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RolloutDocument:
        """Parse a document; UpdateError names what is wrong (never a crash on garbage)."""
        if len(data) > MAX_DOCUMENT_BYTES:
            raise UpdateError(f"rollout document of {len(data)} bytes is over the limit")
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise UpdateError(f"rollout document is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise UpdateError("rollout document is not a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise UpdateError(f"rollout document has unknown fields {sorted(unknown)}")
        try:
            waves = tuple(float(w) for w in raw.get("waves", ()))
            opened = tuple(float(t) for t in raw.get("opened", ()))
            return cls(**{**raw, "waves": waves, "opened": opened})
        except UpdateError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: 10**400
            raise UpdateError(f"rollout document has wrong field types: {exc}") from None


def _release_number(value: Any) -> bool:
    """An int >= 1 (``True`` is an int to Python, not a release number)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _finite(value: Any) -> bool:
    """A real, finite number (not a bool, not NaN or infinity)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
