"""The docs name files, modules and tests that exist.

When the package was re-laid out by concern, README and docs/ kept pointing at `daemon.py`,
`store.py`, `fleet/rollout/device.py` and test files that had moved; nothing failed. These
checks read every backquoted repository path (``edge_agent/...``, ``tests/...`` with an optional
``::test_name``) and dotted module name (``edge_agent.x.y``) in README.md and docs/*.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
PATH = re.compile(
    r"`((?:edge_agent|tests|benchmarks|models|deploy|systemd|device_configs)/[\w./-]*)"
    r"(?::\w+)?(?:::(\w+))?"
)
MODULE = re.compile(r"`(edge_agent(?:\.\w+)+)")


def references(pattern: re.Pattern[str]) -> list[tuple[str, str, str | None]]:
    """(``doc:line``, first group, second group or None) for each match of ``pattern``."""
    found = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for m in pattern.finditer(line):
                second = m.group(2) if pattern.groups > 1 else None
                found.append((f"{doc.name}:{number}", m.group(1), second))
    return found


def test_docs_exist_to_be_checked() -> None:
    assert len(DOCS) > 5
    assert len(references(PATH)) > 20 and len(references(MODULE)) > 5


@pytest.mark.parametrize(("where", "name", "test"), references(PATH))
def test_named_paths_and_tests_exist(where: str, name: str, test: str | None) -> None:
    path = ROOT / name.rstrip(".")
    assert path.exists(), f"{where}: {name} does not exist"
    if test is not None:
        assert re.search(rf"def {test}\b", path.read_text(encoding="utf-8")), (
            f"{where}: {name} has no {test}"
        )


@pytest.mark.parametrize(("where", "name", "_"), references(MODULE))
def test_named_modules_exist(where: str, name: str, _: None) -> None:
    """A dotted name resolves to a module or package, or to a name inside one."""
    parts = name.split(".")
    for depth in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:depth])
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            break
    assert depth >= len(parts) - 1, f"{where}: no module {'.'.join(parts[: depth + 1])}"
    if depth == len(parts) - 1:
        source = (
            base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
        )
        name = parts[-1]
        assert re.search(rf"\b{name}\b", source.read_text(encoding="utf-8")), (
            f"{where}: {'.'.join(parts[:-1])} defines no {name}"
        )
