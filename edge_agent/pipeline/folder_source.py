"""A watched image folder: every new image file becomes one frame.

Polling (``poll_interval_s``) rather than inotify: it works the same on every filesystem,
including network and FUSE mounts where inotify sees nothing, and costs one ``scandir`` per
interval. A file is read only after its size and mtime stayed the same for ``settle_s``, so a
file still being copied in is not read half-written. Files are handed over oldest first and
never dropped (the reader waits for the pipeline). What happens to a file afterwards
(``keep`` / ``delete`` / ``move``) is done only once the pipeline has finished with it
(:meth:`FolderSource.done`), so a crash in between loses nothing: the file is read again.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from typing import Any

from edge_agent.config import FolderSource as FolderSettings
from edge_agent.errors import InputError
from edge_agent.pipeline.frames import Frame, FrameQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Seen:
    size: int
    mtime_ns: int
    first_seen: float


def ready_files(
    listing: dict[str, tuple[int, int]],
    observed: dict[str, _Seen],
    handled: set[str],
    now: float,
    settle_s: float,
) -> list[str]:
    """Names of files that are new and settled, oldest first (pure; updates ``observed``).

    ``listing`` maps name -> (size, mtime_ns) of the matching files now in the folder.
    """
    ready = []
    for name, (size, mtime_ns) in listing.items():
        if name in handled:
            continue
        before = observed.get(name)
        if before is None or (before.size, before.mtime_ns) != (size, mtime_ns):
            observed[name] = _Seen(size, mtime_ns, now)
            if settle_s > 0:
                continue
        if now - observed[name].first_seen >= settle_s:
            ready.append(name)
    for gone in set(observed) - set(listing):
        del observed[gone]
    return sorted(ready, key=lambda n: (listing[n][1], n))


class FolderSource:
    """Frames from image files appearing in a folder."""

    def __init__(self, name: str, settings: FolderSettings, queue_size: int) -> None:
        """Watch ``settings.path`` (created if missing)."""
        self.name = name
        self.settings = settings
        self.queue = FrameQueue(queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observed: dict[str, _Seen] = {}
        self._handled: set[str] = set()
        self.files_read = 0
        self.unreadable = 0
        self.last_error = ""

    def start(self) -> None:
        """Create the folder if needed and start scanning."""
        try:
            self.settings.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"folder source {self.name}: cannot use {self.settings.path}: {exc}"
            ) from None
        if not self.settings.include_existing:
            self._handled.update(self._listing())
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def read(self, timeout: float) -> Frame | None:
        """The next image (None after ``timeout`` seconds without one)."""
        return self.queue.get(timeout)

    @property
    def finished(self) -> bool:
        """A folder never finishes."""
        return False

    def done(self, frame: Frame, ok: bool) -> None:
        """The pipeline finished ``frame``: keep, delete or move the file."""
        path = self.settings.path / frame.frame_id
        try:
            if self.settings.after == "delete":
                path.unlink(missing_ok=True)
            elif self.settings.after == "move" and self.settings.done_dir is not None:
                self.settings.done_dir.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), str(self.settings.done_dir / frame.frame_id))
        except OSError as exc:
            self.last_error = f"{path}: cannot {self.settings.after} it: {exc}"
            log.warning("folder source %s: %s", self.name, self.last_error)

    def stats(self) -> dict[str, Any]:
        """Files read, unreadable files, queue depth."""
        return {
            "frames_read": self.files_read,
            "unreadable": self.unreadable,
            "dropped": 0,
            "queue_depth": len(self.queue),
            "state": "watching" if self._thread is not None else "idle",
            "last_error": self.last_error,
        }

    def stop(self) -> None:
        """Stop scanning."""
        self._stop.set()
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    # -- scanning --------------------------------------------------------------------------

    def _listing(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        try:
            with os.scandir(self.settings.path) as entries:
                for entry in entries:
                    if not any(fnmatch.fnmatchcase(entry.name, p) for p in self.settings.patterns):
                        continue
                    try:
                        if entry.is_file():
                            st = entry.stat()
                            found[entry.name] = (st.st_size, st.st_mtime_ns)
                    except OSError:
                        continue  # vanished between listing and stat
        except OSError as exc:
            self.last_error = f"cannot list {self.settings.path}: {exc}"
        return found

    def _run(self) -> None:
        while not self._stop.is_set():
            listing = self._listing()
            if self.settings.after == "keep":
                self._handled &= set(listing)  # forget files that were removed
            for name in ready_files(
                listing, self._observed, self._handled, time.monotonic(), self.settings.settle_s
            ):
                if self._stop.is_set():
                    return
                self._handled.add(name)
                frame = self._read(name)
                if frame is None:
                    continue
                while not self._stop.is_set() and not self.queue.put(
                    frame, block=True, timeout=0.2
                ):
                    pass
            self._stop.wait(self.settings.poll_interval_s)

    def _read(self, name: str) -> Frame | None:
        import cv2

        path = self.settings.path / name
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            self.unreadable += 1
            self.last_error = f"{path}: OpenCV cannot decode it (corrupt or not an image); skipped"
            log.warning("folder source %s: %s", self.name, self.last_error)
            return None
        self.files_read += 1
        return Frame(image, name, meta={"path": str(path)})
