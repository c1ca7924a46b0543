"""Bounds on what one device can make the monitor do: quarantine, rate limit, model cap.

The monitor's promise is *quarantine, never block*: whatever a device sends, the rest of the
fleet keeps being stored.

* A message that cannot be decoded, or whose rows the database refuses, becomes a
  :class:`DeadLetter` (topic, reason, size, hash and a cleaned preview, never the raw bytes),
  stored in the ``dead_letters`` table, newest rows kept, and acknowledged to the broker.
  :func:`isolate` finds the refused messages of a batch by bisection: a batch with one poison
  record costs about ``2 * log2(batch)`` extra transactions, and every other record commits.
  A message is poison only when it fails alone twice, the database answering in between (the
  first failure after a server restart is the lost connection, not the record).
  A database that is down is not a poison record: when :meth:`Store.ping` fails, or the dead
  letters cannot be written either, nothing is acknowledged and the batch is retried.
* :class:`DeviceRateLimiter`: a token bucket per device (``edge_agent._retry.TokenBucket``);
  messages over it are counted (``dropped{reason="rate_limited"}``), acknowledged and dropped.
* :func:`admit_models`: a device gets at most ``max_models_per_device`` distinct model names
  ever (the store keeps them in ``device_model_names``). Rows naming a model beyond the cap are
  not stored, so a device inventing names cannot create series, dashboard rows or alerts.

The functions here are pure (time is passed in) except :func:`recent_dead_letters`, the
dashboard's read of the table; the store and ingest do the writing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from edge_agent._retry import TokenBucket
from edge_agent.wire._clean import MAX_TEXT, text

if TYPE_CHECKING:
    from edge_agent.fleet.monitor.store import Store

PREVIEW_BYTES = 512
"""How much of a quarantined payload is kept, as cleaned text (enough to recognise it)."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class DeadLetter:
    """A message the monitor could not decode or store, as kept in ``dead_letters``."""

    time: float
    device_id: str | None
    topic: str
    reason: str
    """A short label: the wire's reason (``not_json``, ``wrong_shape``...) or ``store_error``."""
    detail: str | None
    size: int
    sha256: str
    preview: str | None


def dead_letter(
    topic: str, payload: bytes, device_id: str | None, reason: str, detail: str, now: float
) -> DeadLetter:
    """A :class:`DeadLetter` whose every text is safe for both databases (cleaned, bounded)."""
    preview = payload[:PREVIEW_BYTES].decode("utf-8", "replace")
    return DeadLetter(
        time=now,
        device_id=device_id,
        topic=text(topic, 256) or "",
        reason=text(reason, 64) or "unknown",
        detail=text(detail, MAX_TEXT),
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        preview=text(preview, PREVIEW_BYTES),
    )


def isolate(
    items: Sequence[T],
    commit: Callable[[Sequence[T]], R],
    healthy: Callable[[], bool],
    errors: tuple[type[BaseException], ...] = (Exception,),
) -> tuple[list[R], list[tuple[T, BaseException]]]:
    """Commit ``items`` in as few parts as possible; (results, items that fail alone).

    ``commit`` writes a part in one transaction (all or nothing). When a part fails and the
    database is ``healthy``, it is split in two and each half tried again, down to single items;
    an item that fails alone twice is returned with its error (poison). When the database is
    not healthy the error is raised: an outage must be retried, never quarantined.
    """
    results: list[R] = []
    poison: list[tuple[T, BaseException]] = []

    def refused(item: T) -> None:
        """Poison only when it fails again on a database that answers.

        The first failure may have been the connection (a restarted server), which
        ``healthy`` has just replaced.
        """
        try:
            results.append(commit([item]))
        except errors as exc:
            if not healthy():
                raise
            poison.append((item, exc))

    def attempt(part: Sequence[T]) -> None:
        if not part:
            return
        try:
            results.append(commit(part))
            return
        except errors:
            if not healthy():
                raise
            if len(part) == 1:
                refused(part[0])
                return
        middle = len(part) // 2
        attempt(part[:middle])
        attempt(part[middle:])

    attempt(items)
    return results, poison


class DeviceRateLimiter:
    """Messages per second per device: ``rate`` (None: unlimited), bursts up to ``burst``.

    Buckets of devices that went quiet (full again) are forgotten once more than
    ``max_devices`` are held, so the limiter's own memory is bounded too.
    """

    def __init__(self, rate: float | None, burst: float, max_devices: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_devices = max_devices
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, device: str, now: float) -> bool:
        """Whether one more message from ``device`` is admitted at ``now`` (then it is counted)."""
        if self.rate is None:
            return True
        bucket = self._buckets.get(device)
        if bucket is None:
            if len(self._buckets) >= self.max_devices:
                self._forget_idle(now)
            bucket = self._buckets[device] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now) == 0.0

    def _forget_idle(self, now: float) -> None:
        assert self.rate is not None
        for device, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self.rate >= bucket.burst:
                del self._buckets[device]
        if len(self._buckets) >= self.max_devices:  # all busy: start over rather than grow
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


def admit_models(known: set[str], wanted: Iterable[str], cap: int) -> set[str]:
    """The names of ``wanted`` not in ``known`` that fit under ``cap``. Pure.

    New names are admitted in sorted order (deterministic whatever the arrival order of one
    batch), as long as the device holds fewer than ``cap`` names.
    """
    room = max(cap - len(known), 0)
    new = sorted(set(wanted) - known)
    return set(new[:room])


def recent_dead_letters(store: Store, limit: int = 100) -> dict[str, Any]:
    """The newest dead letters and how many the table holds, by reason (dashboard, API)."""
    rows = store.rows(
        "SELECT time, device_id, topic, reason, detail, size, sha256, preview "
        "FROM dead_letters ORDER BY id DESC LIMIT ?",
        [limit],
    )
    counts = store.rows("SELECT reason, COUNT(*) AS n FROM dead_letters GROUP BY reason")
    by_reason = {str(r["reason"]): int(r["n"]) for r in counts}
    return {"total": sum(by_reason.values()), "by_reason": by_reason, "dead_letters": rows}
