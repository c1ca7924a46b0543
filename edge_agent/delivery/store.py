"""The on-device model store: content-addressed files and staged / active / previous slots.

Layout::

    STORE/
      lock                      flock: one process owns the store
      state.json                which versions exist and which slot each is in
      blobs/<sha256>.<suffix>   model files, named by their hash (.tflite / .onnx kept)

Every change is two steps, each atomic: a new blob is written to a temp file, fsynced, hashed
and renamed into ``blobs/`` (an orphan blob after a crash is only garbage), then ``state.json``
is replaced atomically (temp file, fsync, rename, fsync dir). So after ``kill -9`` at any
point the store is the state before or after the change, never between; activation is one
rename. Loading verifies locally (hash of the file against the state), with no network.
"""

from __future__ import annotations

import builtins
import copy
import errno
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from edge_agent._fs import atomic_writer, make_dirs, write_atomically
from edge_agent.errors import ModelError, UpdateError

State = Literal["staged", "active", "previous", "inactive"]
MODEL_SUFFIXES = (".tflite", ".onnx")
STATE_FILE = "state.json"
BLOBS_DIR = "blobs"
SCHEMA = 1


@dataclass(frozen=True)
class InstalledModel:
    """One installed model version."""

    name: str
    version: int
    path: Path
    sha256: str
    manifest: dict[str, Any]
    state: State
    installed_at: float  # seconds since the epoch
    parts: Mapping[str, Path] = field(default_factory=dict)
    """The package's other files by part (``profile``, ``evaluation``), pinned like the model."""

    @property
    def profile(self) -> Path | None:
        """The drift reference profile that came with this version, if any."""
        return self.parts.get("profile")


def installed_blobs(store: ModelStore) -> set[str]:
    """The sha256 of every file the store holds for an installed version (model and parts)."""
    return {
        ref
        for model in store.list()
        for ref in (model.sha256, *(part.name.split(".", 1)[0] for part in model.parts.values()))
    }


def is_model_store(path: Path) -> bool:
    """Whether ``path`` is the root of a model store (it has ``blobs/`` or ``state.json``)."""
    return (path / BLOBS_DIR).is_dir() or (path / STATE_FILE).is_file()


class ModelStore:
    """Installs, activates, rolls back and collects model versions under ``root``.

    One process owns a store (``readonly=True`` opens it to look, without the lock); inside
    that process all methods are thread-safe.
    """

    def __init__(self, root: Path, *, readonly: bool = False) -> None:
        self.root = root
        self.blobs = root / BLOBS_DIR
        self.readonly = readonly
        self._lock = threading.RLock()
        self._lock_file: IO[str] | None = None
        if not readonly:
            make_dirs(self.blobs)
            self._take_lock()
            self._remove_temp_files()
        self._state = self._load()

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the store's lock."""
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> ModelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------

    def staged(self, name: str) -> InstalledModel | None:
        """The version waiting for activation."""
        return self._slot(name, "staged")

    def active(self, name: str) -> InstalledModel | None:
        """The version serving."""
        return self._slot(name, "active")

    def previous(self, name: str) -> InstalledModel | None:
        """The version a rollback returns to."""
        return self._slot(name, "previous")

    def get(self, name: str, version: int) -> InstalledModel | None:
        """One installed version, whatever its state."""
        with self._lock:
            entry = self._models().get(name)
            if entry is None or str(version) not in entry["versions"]:
                return None
            return self._installed(name, version, entry)

    def list(self) -> list[InstalledModel]:
        """Every installed version, by name then version."""
        with self._lock:
            return [
                self._installed(name, int(v), entry)
                for name, entry in sorted(self._models().items())
                for v in sorted(entry["versions"], key=int)
            ]

    def rejected(self, name: str) -> dict[int, str]:
        """Versions of ``name`` refused on this device, with the reason (never reinstalled)."""
        with self._lock:
            entry = self._models().get(name, {})
            return {int(v): str(r["reason"]) for v, r in entry.get("rejected", {}).items()}

    def newest_version(self, name: str) -> int | None:
        """The highest version ever installed here (for downgrade checks)."""
        with self._lock:
            entry = self._models().get(name)
            if entry is None:
                return None
            installed = [int(v) for v in entry["versions"]]
            return max([*installed, entry.get("highest") or 0]) or None

    def verify(self, model: InstalledModel) -> None:
        """Re-hash ``model``'s file; UpdateError when it is missing or altered on disk."""
        if not model.path.is_file():
            raise UpdateError(
                f"{model.path}: {model.name} v{model.version} is missing from "
                "the store; reinstall it (`edge-agent models pull`)"
            )
        if _sha256_file(model.path) != model.sha256:
            raise UpdateError(
                f"{model.path}: {model.name} v{model.version} was altered on disk "
                "(sha256 differs); it will not be loaded; reinstall it"
            )
        for part, path in model.parts.items():  # a blob is named by its sha256
            if not path.is_file() or _sha256_file(path) != path.name.split(".", 1)[0]:
                raise UpdateError(
                    f"{path}: the {part} of {model.name} v{model.version} is missing or "
                    "altered on disk; it will not be loaded; reinstall it"
                )

    # -- changing -------------------------------------------------------------------------

    def install(
        self,
        name: str,
        version: int,
        source_file: Path,
        manifest: dict[str, Any],
        sha256: str,
        parts: Mapping[str, tuple[Path, str]] | None = None,
    ) -> InstalledModel:
        """Copy ``source_file`` (and the package's ``parts``) in as the staged version of ``name``.

        ``parts`` maps a part (``profile``, ``evaluation``) to its verified file and sha256; each
        is copied to its own content-addressed blob first, and one atomic state change then
        makes the whole version installed: a crash leaves all of it or none. Raises UpdateError
        when any bytes do not hash as expected or the version was rejected here before;
        ModelError for a file type the runtimes cannot load.
        """
        self._writable()
        suffix = source_file.suffix
        if suffix not in MODEL_SUFFIXES:
            raise ModelError(f"{source_file}: not a model file ({', '.join(MODEL_SUFFIXES)})")
        if version < 1:
            raise UpdateError(f"{name}: version must be >= 1, got {version}")
        with self._lock:
            reason = self.rejected(name).get(version)
            if reason is not None:
                raise UpdateError(
                    f"{name} v{version} was rejected here ({reason}); it is never reinstalled"
                )
            blob = self.blobs / f"{sha256}{suffix}"
            if not (blob.is_file() and _sha256_file(blob) == sha256):
                self._copy_verified(source_file, blob, sha256)
            stored_parts: dict[str, dict[str, str]] = {}
            for part, (part_file, part_sha256) in sorted((parts or {}).items()):
                part_suffix = part_file.suffix or ".bin"
                part_blob = self.blobs / f"{part_sha256}{part_suffix}"
                if not (part_blob.is_file() and _sha256_file(part_blob) == part_sha256):
                    self._copy_verified(part_file, part_blob, part_sha256)
                stored_parts[part] = {"sha256": part_sha256, "suffix": part_suffix}
            with self._editing() as models:
                entry = models.setdefault(name, _empty_entry())
                entry["versions"][str(version)] = {
                    "sha256": sha256,
                    "suffix": suffix,
                    "manifest": manifest,
                    "installed_at": time.time(),
                    "parts": stored_parts,
                }
                entry["highest"] = max(version, entry.get("highest") or 0)
                if entry["active"] != version:
                    entry["staged"] = version
            return self._installed(name, version, entry)

    def activate(self, name: str, version: int) -> InstalledModel:
        """Make ``version`` active (verified first); the old active becomes previous."""
        self._writable()
        with self._lock:
            model = self.get(name, version)
            if model is None:
                raise UpdateError(
                    f"{name} v{version} is not installed here; "
                    f"installed: {self._versions_text(name)}"
                )
            self.verify(model)
            with self._editing() as models:
                entry = models[name]
                if entry["active"] != version:
                    entry["previous"] = entry["active"]
                    entry["active"] = version
                if entry["staged"] == version:
                    entry["staged"] = None
                if entry["previous"] == version:
                    entry["previous"] = None
            return self._installed(name, version, entry)

    def rollback(self, name: str) -> InstalledModel:
        """Make the previous version active again; the rolled-back one stays, inactive."""
        self._writable()
        with self._lock:
            previous = self.previous(name)
            if previous is None:
                raise UpdateError(f"{name}: no previous version to roll back to")
            self.verify(previous)
            with self._editing() as models:
                entry = models[name]
                entry["active"], entry["previous"] = previous.version, None
            return self._installed(name, previous.version, entry)

    def reject(self, name: str, version: int, reason: str) -> None:
        """Drop a staged (or inactive) version and remember why; it is never reinstalled."""
        self._writable()
        with self._lock, self._editing() as models:
            entry = models.setdefault(name, _empty_entry())
            if entry["active"] == version:
                raise UpdateError(f"{name} v{version} is active: roll back before rejecting it")
            entry["versions"].pop(str(version), None)
            entry["rejected"][str(version)] = {"reason": reason, "at": time.time()}
            entry["highest"] = max(version, entry.get("highest") or 0)
            for slot in ("staged", "previous"):
                if entry[slot] == version:
                    entry[slot] = None

    def gc(self, keep: int = 2) -> builtins.list[Path]:
        """Forget inactive versions beyond the newest ``keep`` per model; delete loose blobs.

        The active, previous and staged versions are always kept. Returns deleted files.
        """
        self._writable()
        with self._lock:
            with self._editing() as models:
                for entry in models.values():
                    slots = {entry["active"], entry["previous"], entry["staged"]} - {None}
                    others = sorted(
                        (int(v) for v in entry["versions"] if int(v) not in slots), reverse=True
                    )
                    for version in others[max(0, keep - len(slots)) :]:
                        del entry["versions"][str(version)]
            used = {
                f"{ref['sha256']}{ref['suffix']}"
                for entry in self._models().values()
                for info in entry["versions"].values()
                for ref in (info, *info.get("parts", {}).values())
            }
            deleted = []
            for blob in self.blobs.iterdir():
                if blob.name not in used:
                    blob.unlink()
                    deleted.append(blob)
            return deleted

    # -- internals ------------------------------------------------------------------------

    def _take_lock(self) -> None:
        handle = (self.root / "lock").open("a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UpdateError(
                f"{self.root}: the model store is in use by another process "
                "(the agent?); stop it, or open the store read-only"
            ) from None
        self._lock_file = handle

    def _writable(self) -> None:
        if self.readonly:
            raise UpdateError(f"{self.root}: opened read-only")

    def _remove_temp_files(self) -> None:
        for directory in (self.root, self.blobs):
            for leftover in directory.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)

    def _load(self) -> dict[str, Any]:
        path = self.root / STATE_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"schema": SCHEMA, "models": {}}
        except (OSError, ValueError) as exc:
            raise UpdateError(
                f"{path}: unreadable store state ({exc}); the store is not "
                "modified: move the file aside to start an empty store"
            ) from None
        if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
            raise UpdateError(f"{path}: unknown store state format; upgrade edge-agent")
        return raw

    @contextmanager
    def _editing(self) -> Iterator[dict[str, Any]]:
        """Change a copy of the state; it becomes current only once it is on disk."""
        draft = copy.deepcopy(self._state)
        yield draft["models"]
        data = json.dumps(draft, indent=1, sort_keys=True).encode()
        try:
            write_atomically(self.root / STATE_FILE, data)
        except OSError as exc:
            raise UpdateError(
                f"{self.root / STATE_FILE}: cannot save the store state ({exc.strerror or exc}); "
                f"nothing changed{_space_hint(self.root, exc)}"
            ) from exc
        self._state = draft

    def _models(self) -> dict[str, Any]:
        if self.readonly:
            self._state = self._load()  # another process owns it: read the latest
        models: dict[str, Any] = self._state["models"]
        return models

    def _slot(self, name: str, slot: str) -> InstalledModel | None:
        with self._lock:
            entry = self._models().get(name)
            if entry is None or entry[slot] is None:
                return None
            return self._installed(name, int(entry[slot]), entry)

    def _installed(self, name: str, version: int, entry: dict[str, Any]) -> InstalledModel:
        info = entry["versions"][str(version)]
        state: State = "inactive"
        slots: tuple[State, ...] = ("active", "previous", "staged")
        for slot in slots:
            if entry[slot] == version:
                state = slot
        return InstalledModel(
            name,
            version,
            self.blobs / f"{info['sha256']}{info['suffix']}",
            info["sha256"],
            info["manifest"],
            state,
            info["installed_at"],
            {
                part: self.blobs / f"{ref['sha256']}{ref['suffix']}"
                for part, ref in info.get("parts", {}).items()
            },
        )

    def _versions_text(self, name: str) -> str:
        entry = self._models().get(name)
        versions = sorted(int(v) for v in entry["versions"]) if entry else []
        return ", ".join(f"v{v}" for v in versions) or "none"

    def _copy_verified(self, source: Path, blob: Path, sha256: str) -> None:
        digest = hashlib.sha256()
        try:
            # read-only: a blob is addressed by its hash and never changes
            with atomic_writer(blob, mode=0o444) as out, source.open("rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
                if digest.hexdigest() != sha256:  # raising here discards the temp file
                    raise UpdateError(
                        f"{source}: sha256 {digest.hexdigest()[:16]}... is not the "
                        f"expected {sha256[:16]}... (tampered or corrupted); not "
                        "installed"
                    )
        except OSError as exc:
            raise UpdateError(
                f"{blob}: cannot copy {source.name} into the store ({exc.strerror or exc}); "
                f"nothing was installed{_space_hint(self.blobs, exc)}"
            ) from exc


def _empty_entry() -> dict[str, Any]:
    return {
        "active": None,
        "previous": None,
        "staged": None,
        "versions": {},
        "rejected": {},
        "highest": None,
    }


def _space_hint(where: Path, exc: OSError) -> str:
    """The tail of an error message for a full disk (with what is free), else nothing."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ""
    try:
        stats = os.statvfs(where)
        free = f"{stats.f_bavail * stats.f_frsize} bytes free"
    except OSError:
        free = "free space unknown"
    return f"; the disk holding {where} is full ({free}): make room and try again"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
