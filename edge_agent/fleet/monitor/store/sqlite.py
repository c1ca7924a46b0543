"""SQLite backend (the default): one file in WAL mode, one writer, readers alongside.

WAL lets the dashboard read while ingest writes. ``synchronous=NORMAL`` (the default here) makes
a commit durable against a crash of the monitor (the broker is acknowledged only after it) but
not against power loss of the monitor host, where the last commits before the checkpoint may
roll back; ``FULL`` fsyncs every commit. Batched writes make either cheap per record.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from edge_agent._fs import make_dirs
from edge_agent.fleet.monitor.store.base import Store, StoreError


class SqliteStore(Store):
    """``sqlite:///path/to/monitor.db`` (or a plain path)."""

    dialect = "sqlite"
    greatest = "max"

    def __init__(self, url: str, path: Path, synchronous: str = "NORMAL") -> None:
        super().__init__(url)
        self.path = path
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise StoreError(f"sqlite synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.synchronous = synchronous.upper()

    def _connect(self, *, writer: bool) -> Any:
        try:
            make_dirs(self.path.parent)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            if writer:
                conn.execute("PRAGMA wal_autocheckpoint=4000")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the monitor database {self.path}: {exc}; check the path and that "
                "its directory is writable"
            ) from None
        return conn

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")
