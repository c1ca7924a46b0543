"""Build the tests' native fakes (real shared libraries) with the system C compiler."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def build_shared_library(source: str, out_dir: Path, *defines: str) -> Path:
    """Compile ``tests/fakes/<source>`` (with ``-D`` ``defines``) into a shared library."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("a C compiler is needed for this test: apt-get install gcc")
    name = "-".join([Path(source).stem, *(d.lower() for d in defines)])
    target = out_dir / f"{name}.so"
    flags = [f"-D{define}" for define in defines]
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", *flags, "-o", str(target), str(HERE / source)],
        check=True,
    )
    return target


def refusing_delegate(out_dir: Path) -> Path:
    """A LiteRT delegate whose Prepare refuses every model."""
    return build_shared_library("fake_delegate.c", out_dir)


def crashing_delegate(out_dir: Path) -> Path:
    """A LiteRT delegate whose Prepare segfaults."""
    return build_shared_library("fake_delegate.c", out_dir, "CRASH")
