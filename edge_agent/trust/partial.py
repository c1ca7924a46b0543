"""Resumable target downloads: a partial file and a chunk journal that survive power loss.

For a target with sha256 ``H`` and file name ``F`` the download directory holds::

    H.F.part        the file being filled in (sparse, written at chunk offsets)
    H.F.part.json   which chunks are on disk, with each chunk's hash
    H.F             the finished file, verified by TUF (length + sha256 from signed metadata)

The journal is only written after the partial file is fsynced, and every chunk it lists is
re-hashed on resume, so a crash at any point costs at most the chunks since the last flush and
can never smuggle a torn chunk into the file. Files are keyed by the target's hash, which is
safe because the repository uses consistent snapshots with hash-prefixed target names: the same
key always means the same bytes. The finished file is verified by TUF before it is renamed into
place, and ngclient's own ``download_target`` is not used because it has no resume and no fsync.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuf.api.exceptions import LengthOrHashMismatchError
from tuf.api.metadata import TargetFile

from edge_agent.errors import UpdateError
from edge_agent.manifest import write_file_atomically
from edge_agent.trust.link import RegistryLink
from edge_agent.trust.transfer import ChunkTransfer, FetchSettings, Progress


@dataclass(frozen=True)
class DownloadResult:
    """A verified target on disk, and what it took to get it."""

    path: Path
    chunks: int
    fetched: int  # chunks received in this run
    resumed: int  # chunks already on disk from an earlier run
    requests_sent: int
    cached: bool  # the finished file was already there


def chunk_digest(data: bytes) -> str:
    """The journal's per-chunk hash (64 bits of sha256: corruption, not attacks)."""
    return hashlib.sha256(data).hexdigest()[:16]


class ResumableDownload:
    """Downloads one TUF target into ``download_dir``, resuming whatever is already there."""

    def __init__(
        self,
        download_dir: Path,
        target: TargetFile,
        remote_path: str,
        settings: FetchSettings,
    ) -> None:
        if "sha256" not in target.hashes:
            raise UpdateError(f"target {target.path} has no sha256 in signed metadata")
        self.target = target
        self.remote_path = remote_path
        self.settings = settings
        self.download_dir = download_dir
        stem = f"{target.hashes['sha256']}.{target.path.rsplit('/', 1)[-1]}"
        self.final_path = download_dir / stem
        self.part_path = download_dir / f"{stem}.part"
        self.journal_path = download_dir / f"{stem}.part.json"
        self.chunk_count = max(1, -(-target.length // settings.chunk_bytes))

    def run(
        self,
        link: RegistryLink,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> DownloadResult:
        """Fetch the missing chunks, verify the whole file with TUF, rename it into place.

        Raises DownloadError (transport; progress kept for the next try) and UpdateError (the
        file does not match signed metadata; everything partial is deleted).
        """
        self.download_dir.mkdir(parents=True, exist_ok=True)
        if self.final_path.exists():
            if self._verifies(self.final_path):
                return DownloadResult(
                    self.final_path, self.chunk_count, 0, self.chunk_count, 0, cached=True
                )
            self.final_path.unlink()
        done = self._load_journal()
        resumed = len(done)
        transfer = ChunkTransfer(link, self.remote_path, self.settings, cancel)
        missing = [i for i in range(self.chunk_count) if i not in done]
        fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, self.target.length)
            since_flush, last_flush = 0, time.monotonic()
            size = self.settings.chunk_bytes
            for index, data, _total in transfer.chunks(missing, self.target.length):
                os.pwrite(fd, data, index * size)
                done[index] = chunk_digest(data)
                since_flush += 1
                if since_flush >= self.settings.flush_every or time.monotonic() - last_flush > 1:
                    self._flush(fd, done)
                    since_flush, last_flush = 0, time.monotonic()
                if progress is not None:
                    progress(min(len(done) * size, self.target.length), self.target.length)
            os.fsync(fd)
        finally:
            with contextlib.suppress(OSError):
                self._flush(fd, done)
            os.close(fd)
        if not self._verifies(self.part_path):
            self.discard()
            raise UpdateError(
                f"{self.target.path}: the downloaded file does not match the length and sha256 "
                "in signed metadata (tampered or corrupted in transit); discarded it"
            )
        os.replace(self.part_path, self.final_path)
        _fsync_dir(self.download_dir)
        self.journal_path.unlink(missing_ok=True)
        return DownloadResult(
            self.final_path,
            self.chunk_count,
            len(missing),
            resumed,
            transfer.requests_sent,
            cached=False,
        )

    def discard(self) -> None:
        """Delete the partial file and its journal."""
        self.part_path.unlink(missing_ok=True)
        self.journal_path.unlink(missing_ok=True)

    # -- journal -------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        return {
            "target": self.target.path,
            "sha256": self.target.hashes["sha256"],
            "length": self.target.length,
            "chunk_bytes": self.settings.chunk_bytes,
        }

    def _load_journal(self) -> dict[int, str]:
        """Chunks on disk whose bytes still hash right (a mismatching journal starts over)."""
        try:
            raw = json.loads(self.journal_path.read_text(encoding="utf-8"))
            listed = {int(k): str(v) for k, v in raw["done"].items()}
            same = {k: raw.get(k) for k in self._identity()} == self._identity()
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            listed, same = {}, False
        if not same or not self.part_path.exists():
            self.discard()
            return {}
        done: dict[int, str] = {}
        size = self.settings.chunk_bytes
        with self.part_path.open("rb") as part:
            for index, digest in sorted(listed.items()):
                if not 0 <= index < self.chunk_count:
                    continue
                part.seek(index * size)
                if chunk_digest(part.read(size)) == digest:
                    done[index] = digest
        return done

    def _flush(self, fd: int, done: dict[int, str]) -> None:
        os.fsync(fd)  # the bytes first, then the journal that vouches for them
        body = self._identity() | {"done": {str(k): v for k, v in sorted(done.items())}}
        write_file_atomically(self.journal_path, json.dumps(body).encode())

    def _verifies(self, path: Path) -> bool:
        try:
            with path.open("rb") as handle:
                self.target.verify_length_and_hashes(handle)
        except (OSError, LengthOrHashMismatchError):
            return False
        return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
