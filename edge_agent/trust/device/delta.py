"""Rebuilding a model from a signed delta and the older model the device holds.

The delta was downloaded and verified like any target (length and sha256 from signed
metadata). Applying it writes the new model into ``H.F.rebuild.part`` beside where its download
would land (``H.F``, see ``partial.py``), then checks that file against the *model's* signed
length and hashes with TUF's own ``verify_length_and_hashes``, exactly the check a download
passes, and only then renames it to ``H.F``. Nothing half-built is ever at a trusted name: a
crash leaves a ``.part`` file that ``clean_downloads`` collects, a mismatch deletes it. Memory:
libzstd decodes between memory-mapped files (``edge_agent._zstd``), so the heap holds none of
the three files.
"""

from __future__ import annotations

from pathlib import Path

from tuf.api.exceptions import LengthOrHashMismatchError
from tuf.api.metadata import TargetFile

from edge_agent import _zstd
from edge_agent._fs import replace_durably
from edge_agent.errors import UpdateError


def rebuild_path(final_path: Path) -> Path:
    """Where the model is rebuilt before it is verified (a partial, for ``clean_downloads``)."""
    return final_path.with_name(f"{final_path.name}.rebuild.part")


def rebuild(base: Path, delta: Path, target: TargetFile, final_path: Path) -> Path:
    """Apply ``delta`` to ``base``; the result, verified against ``target``, at ``final_path``.

    Raises UpdateError (decode error, wrong length or hash, disk error) with nothing left at
    ``final_path``.
    """
    building = rebuild_path(final_path)
    try:
        _zstd.decode(base, delta, building, target.length)
        with building.open("rb") as handle:
            target.verify_length_and_hashes(handle)
        replace_durably(building, final_path)
    except _zstd.PatchError as exc:
        raise UpdateError(f"{target.path}: the delta does not decode: {exc}") from exc
    except LengthOrHashMismatchError as exc:
        raise UpdateError(
            f"{target.path}: the rebuilt model does not match the length and sha256 in signed "
            f"metadata ({exc})"
        ) from exc
    except OSError as exc:
        raise UpdateError(f"{building}: cannot rebuild the model ({exc.strerror or exc})") from exc
    finally:
        building.unlink(missing_ok=True)
    return final_path
