"""PostgreSQL backend (``postgresql://user:pass@host:port/db``), via psycopg 3.

For fleets where several monitor instances share one database (each takes its share of the
MQTT traffic): the record keys are UNIQUE, so two instances that both receive a redelivered
record store it once. psycopg 3 pipelines ``executemany``, so a batch costs about one round
trip. The tables are plain (TimescaleDB can turn the time-series ones into hypertables on
``time`` without changing a query; see docs/scale.md).
"""

from __future__ import annotations

from typing import Any

from edge_agent.fleet.monitor.store.base import Store, StoreError


class PostgresStore(Store):
    """A PostgreSQL database."""

    dialect = "postgresql"
    greatest = "GREATEST"

    def _connect(self, *, writer: bool) -> Any:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "PostgreSQL needs psycopg 3: pip install 'psycopg[binary]' (or the "
                "edge-agent[monitor] extra)"
            ) from None
        try:
            return psycopg.connect(self.url, autocommit=not writer, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the monitor database {self.describe()}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}; check "
                "that PostgreSQL runs there and the user, password and database exist"
            ) from None

    def _is_broken(self, conn: Any) -> bool:
        return bool(conn.closed or conn.broken)

    def _begin(self, conn: Any) -> None:
        """Psycopg opens a transaction implicitly on a non-autocommit connection."""

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")
