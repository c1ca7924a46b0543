"""The device's trust anchor: the newest root it verified, kept where no crash can lose it.

python-tuf's ngclient keeps its own copy of the trusted root (``root.json``, a link to
``root_history/N.root.json``) and recreates it on every ``Updater``: it deletes ``root.json``,
then links it again, two steps, and writes metadata without fsync. A crash between the steps
left no ``root.json``, and provisioning then put the factory root back: the device trusted root
keys that a rotation had revoked. A crash before the page cache reached the disk left a
zero-length root that every later update tripped over as an internal error.

So the device keeps the anchor itself, in ``trusted_root.json`` beside ngclient's files:

- :func:`provision` writes the factory root there only into an empty trust directory, and
  never over an existing file (a link of a complete temp file, :func:`create_atomically`);
- :func:`advance` raises it to each newer root that chains from it in ``root_history/``
  (signed by the old root's and its own thresholds, versions one apart), written atomically
  and durably (:mod:`edge_agent._fs`), and never lowers it;
- :func:`trusted_root` hands it to ngclient as ``bootstrap`` on every refresh, so ngclient's
  ``root.json`` is a cache whose loss costs nothing.

A trust directory written by an older edge-agent has no anchor, and a damaged anchor cannot be
read: :func:`trusted_root` then recovers it from the newest intact root ngclient kept, and
refuses with an :class:`UpdateError` that says how to re-provision when a newer root's file is
damaged, rather than fall back to an older root.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root

from edge_agent._fs import TEMP_SUFFIX, create_atomically, make_dirs, write_atomically
from edge_agent.errors import UpdateError

__all__ = ["ANCHOR", "advance", "provision", "remove_temp_files", "trusted_root"]

log = logging.getLogger(__name__)

ANCHOR = "trusted_root.json"
"""The anchor's file name in the metadata directory (no TUF role has this name)."""
_HISTORY = "root_history"
_HISTORY_NAME = re.compile(r"^([1-9][0-9]{0,9})\.root\.json$")
_METADATA = ("root.json", "timestamp.json", "snapshot.json", "targets.json")


def _self_signed_root(data: bytes, where: object) -> Metadata[Root]:
    """Root metadata signed by its own threshold; UpdateError naming ``where`` otherwise."""
    try:
        md = Metadata[Root].from_bytes(data)
        if not isinstance(md.signed, Root):
            raise UpdateError(f"{where}: holds {md.signed.type} metadata, not root")
        md.verify_delegate(Root.type, md)
    except (tuf_errors.RepositoryError, ValueError, KeyError, TypeError) as exc:
        detail = "empty (0 bytes)" if not data else f"{type(exc).__name__}: {exc}"
        raise UpdateError(f"{where}: not valid self-signed TUF root metadata: {detail}") from None
    return md


def _history(metadata_dir: Path) -> dict[int, Path]:
    """``root_history/N.root.json`` files by version N (whatever they hold)."""
    history = metadata_dir / _HISTORY
    if not history.is_dir():
        return {}
    found = {}
    for path in history.iterdir():
        match = _HISTORY_NAME.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def _is_empty(metadata_dir: Path) -> bool:
    """No anchor, no root (not even a dangling link), no history, no other metadata."""
    names = (ANCHOR, *_METADATA)
    return not any(os.path.lexists(metadata_dir / name) for name in names) and not _history(
        metadata_dir
    )


def provision(metadata_dir: Path, root_json: Path) -> None:
    """Install the factory trust anchor ``root_json`` into an empty ``metadata_dir``.

    A directory holding any trust state is left alone: its root may have been rotated since,
    and even a damaged one is recovered or reported by the next refresh, never overwritten with
    the factory root (whose keys a rotation may have revoked). UpdateError when ``root_json``
    is not root metadata signed by its own threshold.
    """
    if metadata_dir.is_dir() and not _is_empty(metadata_dir):
        return
    try:
        data = root_json.read_bytes()
    except OSError as exc:
        raise UpdateError(f"{root_json}: cannot read the root metadata: {exc}") from None
    _self_signed_root(data, root_json)
    make_dirs(metadata_dir)
    try:
        create_atomically(metadata_dir / ANCHOR, data, mode=0o644)
    except FileExistsError:
        return  # provisioned meanwhile (another process): theirs stands
    write_atomically(metadata_dir / "root.json", data)


def _read_anchor(metadata_dir: Path) -> tuple[Metadata[Root], bytes] | None:
    """The anchor and its bytes, or None (logged) when it is missing or damaged."""
    path = metadata_dir / ANCHOR
    try:
        data = path.read_bytes()
        return _self_signed_root(data, path), data
    except FileNotFoundError:
        return None
    except (OSError, UpdateError) as exc:
        log.warning("%s; recovering it from the roots ngclient kept", exc)
        return None


def trusted_root(metadata_dir: Path) -> bytes:
    """The bytes of the newest root this device trusts (its anchor), for ngclient's bootstrap.

    Recovers a missing or damaged anchor (see the module docstring). UpdateError when the
    device was never provisioned, or when its trust state is damaged beyond what can be
    recovered without trusting an older root; the message says how to re-provision.
    """
    anchor = _read_anchor(metadata_dir) or _recover(metadata_dir)
    return anchor[1]


def _recover(metadata_dir: Path) -> tuple[Metadata[Root], bytes]:
    """The newest intact root among ``root.json`` and ``root_history/``, made the anchor."""
    if not metadata_dir.is_dir() or _is_empty(metadata_dir):
        raise UpdateError(
            f"{metadata_dir}: no trusted root; provision the device with the repository's "
            "root metadata (`models pull --root ROOT.json`, or the agent's `updates.root`)"
        )
    candidates: list[tuple[Metadata[Root], bytes]] = []
    damaged: dict[int, str] = {}
    sources = [(None, metadata_dir / "root.json"), *sorted(_history(metadata_dir).items())]
    for version, path in sources:
        try:
            data = path.read_bytes()
            md = _self_signed_root(data, path)
        except (OSError, UpdateError) as exc:
            if version is not None:
                damaged[version] = str(exc)
            continue
        if version is None or md.signed.version == version:
            candidates.append((md, data))
        else:
            damaged[version] = f"{path}: holds root version {md.signed.version}"
    best = max(candidates, key=lambda found: found[0].signed.version, default=None)
    lost = [v for v in damaged if best is None or v > best[0].signed.version]
    if best is None or lost:
        newest = max(lost, default=None)
        what = f"root version {newest}" if newest is not None else "any root"
        details = "; ".join(damaged[v] for v in sorted(lost)) or "no intact root.json"
        raise UpdateError(
            f"{metadata_dir}: the trusted root metadata is damaged ({details}), most likely by "
            f"a crash or power cut while it was written, and no intact copy of {what} is "
            "left. The device will not fall back to an older root, whose keys a rotation may "
            f"have revoked. To recover, re-provision it with the repository's current root: "
            f"move {metadata_dir} aside, then run `edge-agent models pull --root ROOT.json` "
            "with ROOT.json the newest N.root.json of the repository's metadata (or point "
            "the agent's `updates.root` at it)"
        )
    log.warning(
        "%s: no intact %s; recovered the trust anchor from root version %d",
        metadata_dir,
        ANCHOR,
        best[0].signed.version,
    )
    try:
        write_atomically(metadata_dir / ANCHOR, best[1])
    except OSError as exc:
        raise UpdateError(
            f"{metadata_dir / ANCHOR}: cannot write the recovered root: {exc}"
        ) from exc
    return best


def advance(metadata_dir: Path) -> int:
    """Raise the anchor to the newest root in ``root_history/`` that chains from it.

    Each step must be the next version, signed by the previous root's threshold and its own
    (what ngclient checked before it wrote the file). Called after every refresh, whether it
    succeeded or not (ngclient keeps a verified newer root even when a later step fails).
    Returns the anchor's version; raises UpdateError as :func:`trusted_root` does.
    """
    anchor, data = _read_anchor(metadata_dir) or _recover(metadata_dir)
    start = anchor.signed.version
    history = _history(metadata_dir)
    while (path := history.get(anchor.signed.version + 1)) is not None:
        try:
            newer_data = path.read_bytes()
            newer = Metadata[Root].from_bytes(newer_data)
            if not isinstance(newer.signed, Root):
                break
            anchor.verify_delegate(Root.type, newer)
            newer.verify_delegate(Root.type, newer)
        except (OSError, tuf_errors.RepositoryError, ValueError, KeyError, TypeError):
            break  # not (yet) a verified root: ngclient will fetch and verify it again
        if newer.signed.version != anchor.signed.version + 1:
            break
        anchor, data = newer, newer_data
    if anchor.signed.version != start:
        write_atomically(metadata_dir / ANCHOR, data)
        log.info("%s: trusted root advanced to version %d", metadata_dir, anchor.signed.version)
    return anchor.signed.version


def remove_temp_files(metadata_dir: Path) -> None:
    """Remove temp files a crash left mid-write (only while holding the trust lock)."""
    for folder in (metadata_dir, metadata_dir / _HISTORY):
        for path in folder.glob(f".*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                path.unlink()
