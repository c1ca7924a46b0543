"""The monitor's database: :func:`open_store` picks the backend from the URL.

``sqlite:///var/lib/edge-agent/monitor.db`` (or a plain path) -> :class:`SqliteStore`;
``postgresql://user:pass@host:5432/db`` -> :class:`PostgresStore` (needs psycopg 3).
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.fleet.monitor.store.base import Store, StoreError, WriteResult

__all__ = ["Store", "StoreError", "WriteResult", "open_store"]


def open_store(url: str, *, sqlite_synchronous: str = "NORMAL") -> Store:
    """Open and migrate the database at ``url``; StoreError says what to fix."""
    store: Store
    if url.startswith(("postgresql://", "postgres://")):
        from edge_agent.fleet.monitor.store.postgres import PostgresStore

        store = PostgresStore(url)
    elif url.startswith("sqlite://") or "://" not in url:
        from edge_agent.fleet.monitor.store.sqlite import SqliteStore

        path = url.removeprefix("sqlite://") if url.startswith("sqlite://") else url
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite://")
        if not path or path == "/":
            raise StoreError(f"invalid database URL {url!r}: use sqlite:///PATH or a path")
        store = SqliteStore(url, Path(path), synchronous=sqlite_synchronous)
    else:
        raise StoreError(
            f"unsupported database URL {url!r}: use sqlite:///PATH, a path, or "
            "postgresql://USER:PASSWORD@HOST:PORT/DB"
        )
    try:
        store.open()
    except BaseException:
        store.close()
        raise
    return store
