"""Resumable target downloads: a partial file and a chunk journal that survive power loss.

For a target with sha256 ``H`` and file name ``F`` the download directory holds::

    H.F.part        the file being filled in (space reserved up front, chunks written at offsets)
    H.F.part.json   which chunks are on disk, with each chunk's CRC-32
    H.F             the finished file, verified (length + hashes from signed metadata)

The journal is only written after the partial file is fsynced, and every chunk it lists is
re-checked on resume, so a crash at any point costs at most the chunks since the last flush and
can never smuggle a torn chunk into the file. Files are keyed by the target's hash, which is
safe because the repository uses consistent snapshots with hash-prefixed target names: the same
key always means the same bytes.

The whole file is hashed once, in file order, as chunks land (chunks that land early are read
back from the page cache when their turn comes), and compared with every hash the signed
``TargetFile`` lists, exactly the check TUF's ``verify_length_and_hashes`` makes; only then is
the file renamed into place. ngclient's own ``download_target`` is not used because it has no
resume and no fsync. The file's space is reserved before the first chunk (``posix_fallocate``),
so a disk too small fails at once with a clear reason instead of half way.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuf.api.exceptions import LengthOrHashMismatchError
from tuf.api.metadata import TargetFile

from edge_agent._fs import make_dirs, replace_durably
from edge_agent.config import FetchSettings
from edge_agent.errors import UpdateError
from edge_agent.trust.device.journal import CHECK, JournalWriter, load_journal
from edge_agent.trust.device.link import RegistryLink
from edge_agent.trust.device.transfer import ChunkTransfer, Progress

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@dataclass(frozen=True)
class DownloadResult:
    """A verified target on disk, and what it took to get it."""

    path: Path
    chunks: int
    fetched: int  # chunks received in this run
    resumed: int  # chunks already on disk from an earlier run
    requests_sent: int
    cached: bool  # the finished file was already there
    window_bytes: int = 0  # what the adaptive window ended at, in flight (0: nothing fetched)
    min_rtt_s: float | None = None  # the lowest request round trip measured, if any


class FileHasher:
    """Hashes a file in order while its chunks land in any order (one pass over the bytes).

    Every algorithm the signed ``TargetFile`` lists is computed; an unknown one fails the
    check, as it does in TUF.
    """

    def __init__(self, target: TargetFile, fd: int, chunk_bytes: int) -> None:
        self.target, self.fd, self.chunk_bytes = target, fd, chunk_bytes
        self.next_index = 0
        self.hashed = 0
        self._hashers: dict[str, Any] = {}
        self.unsupported = ""
        for algorithm in target.hashes:
            try:
                self._hashers[algorithm] = hashlib.new(algorithm)
            except (ValueError, TypeError):
                self.unsupported = algorithm

    def landed(self, index: int, data: bytes | memoryview, on_disk: dict[int, int]) -> None:
        """Chunk ``index`` arrived; hash it if it is next, then any on-disk chunks that follow."""
        if index == self.next_index:
            self._update(data)
        self.catch_up(on_disk)

    def catch_up(self, on_disk: dict[int, int]) -> None:
        """Hash the chunks already on disk that follow the hashed prefix."""
        while self.next_index in on_disk:
            self._update(os.pread(self.fd, self.chunk_bytes, self.next_index * self.chunk_bytes))

    def matches(self) -> bool:
        """Whether the whole file has the signed length and hashes."""
        if self.unsupported or self.hashed != self.target.length:
            return False
        return all(
            h.hexdigest() == self.target.hashes[algorithm] for algorithm, h in self._hashers.items()
        )

    def _update(self, data: bytes | memoryview) -> None:
        for h in self._hashers.values():
            h.update(data)
        self.hashed += len(data)
        self.next_index += 1


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
        """Fetch the missing chunks, verify the whole file, rename it into place.

        Raises DownloadError (transport; progress kept for the next try) and UpdateError (the
        file does not match signed metadata; everything partial is deleted).
        """
        make_dirs(self.download_dir)
        if self.final_path.exists():
            if self._verifies(self.final_path):
                return DownloadResult(
                    self.final_path, self.chunk_count, 0, self.chunk_count, 0, cached=True
                )
            self.final_path.unlink()
        done = self._load_journal()
        resumed = len(done)
        transfer = ChunkTransfer(link, self.remote_path, self.settings, cancel)
        missing = self.chunk_count - resumed
        fd = self._open_reserved()
        journal = JournalWriter(self.journal_path, self._identity(), fd)
        complete = False
        try:
            hasher = FileHasher(self.target, fd, self.settings.chunk_bytes)
            hasher.catch_up(done)  # what an earlier run left, up to its first gap
            since_flush, last_flush = 0, time.monotonic()
            size = self.settings.chunk_bytes
            for index, data, _total, crc in transfer.chunks(self.target.length, done):
                os.pwrite(fd, data, index * size)
                done[index] = crc
                hasher.landed(index, data, done)
                since_flush += 1
                due = time.monotonic() - last_flush >= self.settings.flush_interval_s
                if since_flush >= self.settings.flush_every or due:
                    journal.submit(done)  # persisted on the journal's thread
                    since_flush, last_flush = 0, time.monotonic()
                if progress is not None:
                    progress(min(len(done) * size, self.target.length), self.target.length)
            os.fsync(fd)
            complete = True
            verified = hasher.matches()
        except OSError as exc:
            raise self._disk_error(exc, "stopped") from exc
        finally:
            try:
                if not complete:  # keep what arrived for the next try
                    with contextlib.suppress(OSError):
                        journal.flush(done)
            finally:
                journal.close(write_pending=not complete)
                os.close(fd)
        if not verified:
            self.discard()
            raise UpdateError(
                f"{self.target.path}: the downloaded file does not match the length and sha256 "
                "in signed metadata (tampered or corrupted in transit); discarded it"
            )
        try:
            replace_durably(self.part_path, self.final_path)
            self.journal_path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._disk_error(exc, "could not finish") from exc
        return DownloadResult(
            self.final_path,
            self.chunk_count,
            missing,
            resumed,
            transfer.requests_sent,
            cached=False,
            window_bytes=transfer.window.window * transfer.unit,
            min_rtt_s=transfer.window.min_rtt,
        )

    def _open_reserved(self) -> int:
        """The partial file, its whole length allocated on disk (ENOSPC now, not half way)."""
        try:
            fd = os.open(self.part_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._disk_error(exc, "cannot start") from exc
        try:
            os.ftruncate(fd, self.target.length)
            if self.target.length:
                try:
                    os.posix_fallocate(fd, 0, self.target.length)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
        except OSError as exc:
            os.close(fd)
            if exc.errno in _DISK_FULL:
                self.discard()  # nothing useful in it, and the space is better free
                raise self._disk_error(exc, "no room for", "removed the partial download") from exc
            raise self._disk_error(exc, "cannot start") from exc
        return fd

    def _disk_error(self, exc: OSError, what: str, done: str = "") -> UpdateError:
        """A clear reason for a failed write, above all a full disk or a file size limit."""
        where = self.download_dir
        text = f"{self.target.path}: {what} the download in {where}: {exc.strerror or exc}"
        if exc.errno == errno.EFBIG:
            text += (
                f" ({self.target.length} bytes needed; this process may not write files that "
                "large: raise its file size limit, `ulimit -f` / LimitFSIZE=)"
            )
        elif exc.errno in _DISK_FULL:
            text += (
                f" ({self.target.length} bytes needed, {_free_bytes(where)} free); make room "
                "(or give the download directory a larger disk) and pull again"
            )
        if done:
            text += f"; {done}"
        elif what == "stopped":
            text += "; what arrived is kept and the next pull resumes"
        return UpdateError(text)

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
            "check": CHECK,
        }

    def _load_journal(self) -> dict[int, int]:
        """Chunks on disk that still check right (without a usable journal: start over)."""
        done = load_journal(
            self.journal_path,
            self.part_path,
            self._identity(),
            self.settings.chunk_bytes,
            self.chunk_count,
        )
        if done is None:
            self.discard()
            return {}
        return done

    def _verifies(self, path: Path) -> bool:
        try:
            with path.open("rb") as handle:
                self.target.verify_length_and_hashes(handle)
        except (OSError, LengthOrHashMismatchError):
            return False
        return True


def _free_bytes(path: Path) -> int:
    try:
        stats = os.statvfs(path)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize
