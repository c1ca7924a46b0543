"""The controller's persisted state: one JSON file, written atomically, locked per change.

The file is the controller's source of truth. Every change is made under an exclusive lock
(several `edge-agent fleet rollout ...` processes may run: one following the rollout, another
pausing it), written atomically (temp file, fsync, rename, fsync dir) and only *then* published
as a signed document; a controller killed in between republishes the document on its next
step, so a restarted controller resumes where the file says, never from a half state.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_agent._fs import make_dirs, write_atomically
from edge_agent.delivery.rollout_document import RolloutDocument
from edge_agent.errors import UpdateError

SCHEMA = 1
RUNNING = ("rolling", "paused")
ENDED = ("completed", "rolled_back", "aborted", "timed_out")
HISTORY_LIMIT = 200


@dataclass
class RolloutRecord:
    """One rollout as the controller tracks it."""

    id: str
    group: str
    model: str
    release: int
    previous: int | None
    waves: list[float]
    salt: str
    members: list[str]
    thresholds: dict[str, Any]
    status: str = "rolling"
    """``rolling``, ``paused``, then one of ``completed``, ``rolled_back``, ``aborted``,
    ``timed_out``."""
    opened: list[float] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    reason: str = ""
    issued_at: float = 0.0
    """When the document devices see last changed (part of the document)."""
    timer_from: float = 0.0
    """The current wave's soak and timeout count from max(its opening, this): a resume."""
    last_gates: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        """Still rolling or paused."""
        return self.status in RUNNING

    def document(self) -> RolloutDocument:
        """The signed document this record implies (deterministic: same record, same bytes)."""
        doc_state = {
            "rolling": "rolling",
            "paused": "paused",
            "completed": "completed",
        }.get(self.status, "rolled_back")
        return RolloutDocument(
            id=self.id,
            group=self.group,
            model=self.model,
            release=self.release,
            previous=self.previous,
            waves=tuple(self.waves),
            salt=self.salt,
            state=doc_state,
            opened=tuple(self.opened),
            reason=self.reason,
            issued_at=self.issued_at,
        )

    def log(self, now: float, event: str, reason: str, **extra: Any) -> None:
        """Append to the bounded history."""
        self.history.append({"time": now, "event": event, "reason": reason, **extra})
        del self.history[:-HISTORY_LIMIT]


@dataclass
class ControllerState:
    """Every group's current (or last) rollout, and releases withdrawn per group and model."""

    rollouts: dict[str, RolloutRecord] = field(default_factory=dict)
    withdrawn: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def withdraw(self, group: str, model: str, release: int) -> None:
        """Remember that ``release`` was rolled back in ``group`` (refused unless retried)."""
        releases = self.withdrawn.setdefault(group, {}).setdefault(model, [])
        if release not in releases:
            releases.append(release)

    def reinstate(self, group: str, model: str, release: int) -> None:
        """Forget a withdrawal: the operator rolls ``release`` out again (``create --retry``)."""
        releases = self.withdrawn.get(group, {}).get(model, [])
        if release in releases:
            releases.remove(release)

    def is_withdrawn(self, group: str, model: str, release: int) -> bool:
        """Whether ``release`` of ``model`` was rolled back in ``group`` before."""
        return release in self.withdrawn.get(group, {}).get(model, [])


class StateFile:
    """Load/save :class:`ControllerState` at ``path`` with a sibling lock file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    def load(self) -> ControllerState:
        """The saved state (empty when the file does not exist yet)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return ControllerState()
        except (OSError, ValueError) as exc:
            raise UpdateError(
                f"{self.path}: unreadable rollout controller state ({exc}); it is left as is: "
                "restore it from a backup or move it aside to start afresh"
            ) from None
        try:
            if raw.get("schema") != SCHEMA:
                raise ValueError(f"schema {raw.get('schema')!r}")
            rollouts = {g: RolloutRecord(**r) for g, r in raw["rollouts"].items()}
            return ControllerState(rollouts, raw.get("withdrawn", {}))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise UpdateError(
                f"{self.path}: not a rollout controller state file ({exc!r}); upgrade "
                "edge-agent or move it aside"
            ) from None

    def save(self, state: ControllerState) -> None:
        """Write atomically."""
        data = {
            "schema": SCHEMA,
            "rollouts": {g: asdict(r) for g, r in sorted(state.rollouts.items())},
            "withdrawn": state.withdrawn,
        }
        write_atomically(self.path, json.dumps(data, indent=1, sort_keys=True).encode())

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the exclusive lock (load, change, save and publish inside it)."""
        make_dirs(self.path.parent)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
