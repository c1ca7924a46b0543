"""Crash-safe file writes, in one place.

A file that is later trusted (the store's state, a model blob, TUF metadata, a manifest, a drift
profile, a captured sample) must never be seen half-written. Every writer goes through
:func:`atomic_writer` (or its shorthands), which does the four steps in order:

1. write to a temp file in the *same directory* (``.<name>.<random>.tmp``; a rename across file
   systems is not atomic, and recovery code removes ``*.tmp`` leftovers),
2. flush and ``fsync`` the temp file, so its bytes are on disk before anything points at them,
3. ``os.replace`` it over the target (atomic on POSIX: readers see the old file or the new one),
4. ``fsync`` the directory, so the rename itself survives a power cut (and a directory it had to
   create is made durable too: :func:`make_dirs`).

If anything fails (or the caller's ``with`` body raises) the temp file is removed and the target
is untouched. ``durable=False`` skips the two fsyncs (for data that may be lost but must never be
half-read, e.g. captured samples with ``fsync: false``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_writer",
    "copy_atomically",
    "create_atomically",
    "fsync_dir",
    "make_dirs",
    "replace_durably",
    "write_atomically",
]

TEMP_SUFFIX = ".tmp"
"""Every temp file ends with this, so recovery code can remove leftovers after a crash."""
DEFAULT_MODE = 0o644
"""Written files are readable by other users (packages, metadata, state are not secrets) and
do not depend on the writer's umask; pass ``mode=None`` for the umask's default."""


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path, mode: int = 0o777) -> None:
    """``mkdir -p`` whose new directories survive a power cut.

    A new directory is an entry in its parent, durable only once the parent is fsynced: a
    store created on first boot (``path.mkdir(parents=True)``) and filled with fsynced files
    vanished whole at a power cut, because nothing ever fsynced the directory above it. Each
    directory this call creates has its parent fsynced; existing ones cost one ``stat``.
    """
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        fsync_dir(directory.parent)


def _open_temp(path: Path) -> tuple[Path, int]:
    """Create a new temp file beside ``path`` (O_EXCL: never an existing file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            # 0o666 like open(): the umask decides unless the caller asks for a mode.
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


@contextlib.contextmanager
def atomic_writer(
    path: Path, *, mode: int | None = DEFAULT_MODE, durable: bool = True
) -> Iterator[BinaryIO]:
    """Yield a binary file whose content replaces ``path`` when the ``with`` block ends.

    ``mode``: permission bits of the new file (None: the umask's default, as ``open`` gives).
    An exception inside the block (a hash mismatch, say) discards the temp file and leaves
    ``path`` as it was. Creates missing parent directories. Raises OSError from the file system.
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp, fd = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def write_atomically(
    path: Path, data: bytes, *, mode: int | None = DEFAULT_MODE, durable: bool = True
) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, mode=mode, durable=durable) as handle:
        handle.write(data)


def copy_atomically(source: Path, destination: Path, *, mode: int | None = DEFAULT_MODE) -> None:
    """Stream ``source`` into ``destination`` atomically, 1 MiB at a time (large files)."""
    with atomic_writer(destination, mode=mode) as out, Path(source).open("rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)


def create_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write a *new* file: complete or absent after a crash, and never over an existing one.

    For secrets that must not be replaced (a private key): the temp file is linked to ``path``
    (``FileExistsError`` if something is there) instead of renamed over it.
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp, fd = _open_temp(path)
    try:
        os.fchmod(fd, mode)  # before any byte is written: a secret is never readable by others
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_dir(path.parent)


def replace_durably(source: Path, destination: Path) -> None:
    """``os.replace`` an already written (and fsynced) file, then fsync the directories.

    For files built in place (a download's partial file, a key being retired): the rename is
    atomic, and fsyncing the directory (both, if they differ) makes it survive a power cut.
    """
    source, destination = Path(source), Path(destination)
    os.replace(source, destination)
    fsync_dir(destination.parent)
    if source.parent.resolve() != destination.parent.resolve():
        fsync_dir(source.parent)
