"""zstd's patch-from (a binary delta of one file against an older one), through the system libzstd.

A delta is one ordinary zstd frame whose matches may reach into a *prefix*: the older file's
bytes, which both sides hold (``zstd --patch-from=OLD NEW`` makes the same frame; it decodes
with ``zstd -d --patch-from=OLD``). The binding is a dozen functions of libzstd's stable API
called through ``ctypes``, so it needs no Python package: libzstd.so.1 ships with every Debian,
Ubuntu and Raspberry Pi OS (apt and systemd link it), on armv7l as well, where the
``zstandard`` wheel does not exist (docs/decisions.md, "Delta releases"). Without the library
:func:`unavailable` says so and the device simply downloads whole models.

Both sides work on memory-mapped files and never read a model onto the heap: :func:`decode`
writes straight into the output file's mapping (one-shot decoding keeps no window buffer of its
own), so what decoding holds besides libzstd's context (~160 KiB) is page cache, which the
kernel can reclaim: the older model, the delta and the new model, each mapped once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import math
import mmap
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LEVEL = 9
"""Compression level of deltas. Changed weights are near-random bytes that no level shrinks;
what counts is finding the unchanged runs, which level 9 with long-distance matching does as
well as 19 (measured: same size on a fine-tuned model, 17x faster on 32 MB)."""

_C_COMPRESSION_LEVEL = 100  # ZSTD_c_compressionLevel
_C_WINDOW_LOG = 101  # ZSTD_c_windowLog
_C_ENABLE_LDM = 160  # ZSTD_c_enableLongDistanceMatching
_C_CONTENT_SIZE = 200  # ZSTD_c_contentSizeFlag
_C_CHECKSUM = 201  # ZSTD_c_checksumFlag
_WINDOW_LOG_MAX = 31 if ctypes.sizeof(ctypes.c_void_p) == 8 else 30
_CONTENTSIZE_UNKNOWN = 2**64 - 1
_CONTENTSIZE_ERROR = 2**64 - 2
_MIN_VERSION = 10400  # refPrefix and compress2 are stable from 1.4.0

_lock = threading.Lock()
_lib: Any = None
_missing = ""


class PatchError(Exception):
    """A delta could not be made or applied; the message says why (libzstd's words)."""


def unavailable() -> str:
    """Why deltas cannot be used here ("" when they can)."""
    _load()
    return _missing


def encode(base: Path, new: Path, level: int = LEVEL) -> bytes:
    """The delta that rebuilds ``new`` from ``base`` (one zstd frame with size and checksum).

    The window covers both files, so a match may reach anywhere into ``base``. Raises
    PatchError when libzstd is missing or refuses.
    """
    lib = _require()
    base_size, new_size = base.stat().st_size, new.stat().st_size
    window_log = max(10, min(_WINDOW_LOG_MAX, math.ceil(math.log2(base_size + new_size + 1))))
    cctx = lib.ZSTD_createCCtx()
    if not cctx:
        raise PatchError("libzstd could not allocate a compression context")
    try:
        for parameter, value in (
            (_C_COMPRESSION_LEVEL, level),
            (_C_WINDOW_LOG, window_log),
            (_C_ENABLE_LDM, 1),
            (_C_CONTENT_SIZE, 1),
            (_C_CHECKSUM, 1),
        ):
            _check(lib, lib.ZSTD_CCtx_setParameter(cctx, parameter, value), "setting up")
        with _mapped(base) as base_ptr, _mapped(new) as new_ptr:
            _check(lib, lib.ZSTD_CCtx_refPrefix(cctx, base_ptr, base_size), "loading the base")
            out = ctypes.create_string_buffer(lib.ZSTD_compressBound(new_size))
            size = _check(
                lib,
                lib.ZSTD_compress2(cctx, out, len(out), new_ptr, new_size),
                "encoding",
            )
        return out.raw[:size]
    finally:
        lib.ZSTD_freeCCtx(cctx)


def decode(base: Path, delta: Path, out: Path, length: int) -> None:
    """Write the ``length`` bytes that ``delta`` rebuilds from ``base`` into the new file ``out``.

    ``length`` comes from signed metadata: a frame that declares another size, or decodes to
    another, is refused before (or instead of) being trusted with the output. libzstd checks
    the frame's own checksum. Raises PatchError (``out`` may then hold garbage: the caller
    owns it and deletes it); the caller still verifies the whole file's hash.
    """
    lib = _require()
    delta_size = delta.stat().st_size
    dctx = lib.ZSTD_createDCtx()
    if not dctx:
        raise PatchError("libzstd could not allocate a decompression context")
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _reserve(fd, length)
        with _mapped(delta) as delta_ptr, _mapped(base) as base_ptr:
            declared = lib.ZSTD_getFrameContentSize(delta_ptr, delta_size)
            if declared in (_CONTENTSIZE_UNKNOWN, _CONTENTSIZE_ERROR):
                raise PatchError("the delta is not a zstd frame with a declared size")
            if declared != length:
                raise PatchError(f"the delta rebuilds {declared} bytes, not the signed {length}")
            _check(lib, lib.ZSTD_DCtx_refPrefix(dctx, base_ptr, base.stat().st_size), "loading")
            size = 0
            if length:
                with mmap.mmap(fd, length, access=mmap.ACCESS_WRITE) as target:
                    anchor = ctypes.c_char.from_buffer(target)
                    try:
                        size = _check(
                            lib,
                            lib.ZSTD_decompressDCtx(
                                dctx, ctypes.addressof(anchor), length, delta_ptr, delta_size
                            ),
                            "decoding",
                        )
                    finally:
                        del anchor  # released before the mapping closes
                    target.flush()
            if size != length:
                raise PatchError(f"the delta rebuilt {size} bytes, not the signed {length}")
        os.fsync(fd)
    finally:
        os.close(fd)
        lib.ZSTD_freeDCtx(dctx)


def _reserve(fd: int, length: int) -> None:
    """Give the output file its blocks before it is mapped (ENOSPC here, not SIGBUS later).

    A write through a mapping that the disk cannot hold is SIGBUS, which kills the process.
    """
    os.ftruncate(fd, length)
    if not length:
        return
    try:
        os.posix_fallocate(fd, 0, length)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        block = bytes(1 << 20)  # no fallocate on this file system: write the zeros instead
        for offset in range(0, length, len(block)):
            os.pwrite(fd, block[: min(len(block), length - offset)], offset)


# -- the binding ---------------------------------------------------------------------------


@contextmanager
def _mapped(path: Path) -> Iterator[int]:
    """The address of ``path``, mapped copy-on-write; 0 for an empty file.

    Never written: copy-on-write only because ctypes takes an address from writable buffers.
    """
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            yield 0
            return
        with mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY) as view:
            anchor = ctypes.c_char.from_buffer(view)
            try:
                yield ctypes.addressof(anchor)
            finally:
                del anchor  # the mapping cannot close while a ctypes object exports it


def _require() -> Any:
    lib = _load()
    if lib is None:
        raise PatchError(_missing)
    return lib


def _check(lib: Any, code: int, what: str) -> int:
    if lib.ZSTD_isError(code):
        raise PatchError(f"libzstd failed {what}: {lib.ZSTD_getErrorName(code).decode()}")
    return code


def _load() -> Any:
    """The libzstd library, its signatures declared, loaded once; None without it (``_missing``)."""
    global _lib, _missing
    with _lock:
        if _lib is not None or _missing:
            return _lib
        try:
            try:  # the soname first: find_library runs ldconfig (or a compiler) to search
                lib = ctypes.CDLL("libzstd.so.1")
            except OSError:
                lib = ctypes.CDLL(ctypes.util.find_library("zstd") or "libzstd.so")
            _declare(lib)
        except (OSError, AttributeError) as exc:
            _missing = f"libzstd is not installed ({exc}); install libzstd1 to use deltas"
            return None
        version = lib.ZSTD_versionNumber()
        if version < _MIN_VERSION:
            _missing = f"libzstd {version} is older than 1.4.0; deltas need a newer libzstd1"
            return None
        _lib = lib
        return lib


def _declare(lib: Any) -> None:
    size, ptr = ctypes.c_size_t, ctypes.c_void_p
    signatures: dict[str, tuple[list[Any], Any]] = {
        "ZSTD_versionNumber": ([], ctypes.c_uint),
        "ZSTD_isError": ([size], ctypes.c_uint),
        "ZSTD_getErrorName": ([size], ctypes.c_char_p),
        "ZSTD_compressBound": ([size], size),
        "ZSTD_createCCtx": ([], ptr),
        "ZSTD_freeCCtx": ([ptr], size),
        "ZSTD_CCtx_setParameter": ([ptr, ctypes.c_int, ctypes.c_int], size),
        "ZSTD_CCtx_refPrefix": ([ptr, ptr, size], size),
        "ZSTD_compress2": ([ptr, ptr, size, ptr, size], size),
        "ZSTD_createDCtx": ([], ptr),
        "ZSTD_freeDCtx": ([ptr], size),
        "ZSTD_DCtx_refPrefix": ([ptr, ptr, size], size),
        "ZSTD_decompressDCtx": ([ptr, ptr, size, ptr, size], size),
        "ZSTD_getFrameContentSize": ([ptr, size], ctypes.c_ulonglong),
    }
    for function, (argtypes, restype) in signatures.items():
        bound = getattr(lib, function)
        bound.argtypes = argtypes
        bound.restype = restype
