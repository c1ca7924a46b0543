"""Every module of the package is on one side of the device/operator boundary.

The import-linter contract in pyproject.toml lists both sides; a package or command added
without being put on a side would escape the contract silently. This test makes adding one a
decision.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE = ROOT / "edge_agent"
FACES = {"edge_agent.cli", "edge_agent.trust"}
"""Package faces that only hold the parts below them (the parts are classified one by one)."""


def boundary_contract() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if c["name"] == "The device side never imports the operator side"
    ]
    return contract


def modules_to_classify() -> set[str]:
    """Top-level modules and packages, and the parts of the `cli` and `trust` packages."""
    found = set()
    for parent, prefix in (
        (PACKAGE, "edge_agent"),
        (PACKAGE / "cli", "edge_agent.cli"),
        (PACKAGE / "trust", "edge_agent.trust"),
    ):
        for path in parent.iterdir():
            if path.name.startswith("__") or path.name.startswith("."):
                continue
            if path.suffix == ".py":
                found.add(f"{prefix}.{path.stem}")
            elif path.is_dir() and (path / "__init__.py").exists():
                found.add(f"{prefix}.{path.name}")
    return found - FACES


def test_every_module_is_on_one_side_of_the_boundary():
    contract = boundary_contract()
    device, operator = set(contract["source_modules"]), set(contract["forbidden_modules"])
    assert device.isdisjoint(operator)
    unclassified = sorted(modules_to_classify() - device - operator)
    assert unclassified == [], (
        f"put {unclassified} in the device or the operator list of the boundary contract "
        "in pyproject.toml"
    )
