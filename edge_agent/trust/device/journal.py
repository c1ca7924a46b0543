"""The chunk journal of a partial download: which chunks are safely on disk, and their CRC-32.

The rule that makes it crash-safe: the partial file is fsynced *before* a journal listing its
chunks replaces the previous one (atomically), so the journal never vouches for bytes that a
power loss could take back; on resume every listed chunk is re-checked against its CRC anyway.

Writing the journal (an fsync of megabytes, then an atomic file replace) is slow next to
receiving a chunk, so :class:`JournalWriter` does it on a thread of its own: the download
hands it a snapshot of the chunks written so far and carries on. A snapshot taken before the
fsync starts only lists chunks that were written before it, so the rule holds.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from pathlib import Path
from typing import Any

from edge_agent._fs import write_atomically

CHECK = "crc32"


def chunk_digest(data: bytes | memoryview) -> int:
    """The journal's per-chunk check (CRC-32: torn writes and corruption, not attacks)."""
    return zlib.crc32(data)


def load_journal(
    journal_path: Path, part_path: Path, identity: dict[str, Any], chunk_bytes: int, count: int
) -> dict[int, int] | None:
    """Chunks of ``part_path`` that the journal lists and that still check right.

    None when there is no usable journal (missing, unreadable, or for another file or chunk
    size): the caller starts over.
    """
    try:
        raw = json.loads(journal_path.read_text(encoding="utf-8"))
        listed = {int(k): int(v) for k, v in raw["done"].items()}
        same = {k: raw.get(k) for k in identity} == identity
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not same or not part_path.exists():
        return None
    done: dict[int, int] = {}
    with part_path.open("rb") as part:
        for index, digest in sorted(listed.items()):
            if not 0 <= index < count:
                continue
            part.seek(index * chunk_bytes)
            if chunk_digest(part.read(chunk_bytes)) == digest:
                done[index] = digest
    return done


class JournalWriter:
    """Persists snapshots of a download's progress, on a background thread.

    ``submit`` never blocks (a newer snapshot replaces one still waiting); ``flush`` writes
    synchronously (after waiting for the thread); ``close`` waits for the thread. A failed
    background write is raised by the next ``submit``/``flush``/``check``.
    """

    def __init__(self, journal_path: Path, identity: dict[str, Any], part_fd: int) -> None:
        self.journal_path = journal_path
        self.identity = identity
        self.part_fd = part_fd
        self.writes = 0
        self._cond = threading.Condition()
        self._waiting: dict[int, int] | None = None
        self._busy = False
        self._closed = False
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None

    def submit(self, done: dict[int, int]) -> None:
        """Persist a copy of ``done`` soon (every chunk in it is already written)."""
        self.check()
        with self._cond:
            self._waiting = dict(done)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="download-journal", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def flush(self, done: dict[int, int]) -> None:
        """Persist ``done`` now, after any background write."""
        self._drain()
        self.check()
        self._write(done)

    def check(self) -> None:
        """Raise the error of a failed background write, if any."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self, write_pending: bool = True) -> None:
        """Wait for the background thread and stop it.

        ``write_pending`` False drops a snapshot still waiting (the download is complete and
        its journal is about to be deleted); a write already under way is waited for.
        """
        with self._cond:
            if not write_pending:
                self._waiting = None
        self._drain()
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _drain(self) -> None:
        with self._cond:
            while self._busy or self._waiting is not None:
                self._cond.wait()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._waiting is None and not self._closed:
                    self._cond.wait()
                if self._waiting is None:
                    return
                snapshot, self._waiting = self._waiting, None
                self._busy = True
            try:
                self._write(snapshot)
            except OSError as exc:
                self._error = exc
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, done: dict[int, int]) -> None:
        os.fsync(self.part_fd)  # the bytes first, then the journal that vouches for them
        body = self.identity | {"done": {str(k): v for k, v in sorted(done.items())}}
        write_atomically(self.journal_path, json.dumps(body).encode())
        self.writes += 1
