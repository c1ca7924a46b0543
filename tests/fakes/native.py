"""Build the tests' native fakes (real shared libraries) with the system C compiler."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def build_shared_library(source: str, out_dir: Path) -> Path:
    """Compile ``tests/fakes/<source>`` into a shared library in ``out_dir``."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("a C compiler is needed for this test: apt-get install gcc")
    target = out_dir / (Path(source).stem + ".so")
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(target), str(HERE / source)], check=True
    )
    return target
