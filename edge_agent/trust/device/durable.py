"""ngclient's ``Updater`` with crash-safe files: what it persists survives a power cut.

python-tuf 7 writes each piece of metadata to a temp file and renames it, without fsync (a
power cut can leave a zero-length ``timestamp.json`` or ``root_history/N.root.json``), and
replaces ``root.json`` by deleting it and then linking it again (a crash between the two
leaves none). Its ``Updater`` funnels every write through two methods, ``_persist_file`` and
``_update_root_symlink``; :class:`DurableUpdater` overrides both:

- every file goes through :func:`edge_agent._fs.write_atomically` (temp file, fsync, rename,
  fsync of the directory); a file that already holds the same bytes is only fsynced (ngclient
  re-persists the bootstrap root on every construction),
- ``root.json`` becomes a plain copy of the trusted root, replaced in one rename: never absent.

They are private methods, so the fsync test in ``tests/unit/trust/test_anchor.py`` fails if a
python-tuf release stops calling them (``tuf>=7,<8`` in pyproject.toml). The trust anchor
(:mod:`edge_agent.trust.device.anchor`) does not depend on them: it is written by our code.
"""

from __future__ import annotations

import os
from pathlib import Path

from tuf.ngclient import Updater

from edge_agent._fs import write_atomically

__all__ = ["DurableUpdater", "write_if_changed"]


def write_if_changed(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably, unless it already holds it.

    An identical file is fsynced instead (cheap when it is clean), so the promise holds even
    for a file an older writer left in the page cache only.
    """
    try:
        with path.open("rb") as handle:
            if handle.read(len(data) + 1) == data:
                os.fsync(handle.fileno())
                return
    except OSError:
        pass  # missing or unreadable: write it
    write_atomically(path, data)


class DurableUpdater(Updater):
    """An ngclient ``Updater`` whose every write is atomic and durable."""

    def _persist_file(self, filename: str, data: bytes) -> None:
        write_if_changed(Path(filename), data)

    def _update_root_symlink(self) -> None:
        """``root.json`` := the trusted root's bytes, in one atomic, durable replace."""
        version = self._trusted_set.root.version
        history = Path(self._dir, "root_history", f"{version}.root.json")
        target = Path(self._dir, "root.json")
        data = history.read_bytes()
        if target.is_symlink():  # ngclient's link (older edge-agent): one rename replaces it
            write_atomically(target, data)
        else:
            write_if_changed(target, data)
