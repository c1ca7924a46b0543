"""docs/config-reference.md is generated from the schema and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config.reference import render_reference

DOC = Path(__file__).resolve().parents[3] / "docs" / "config-reference.md"


def test_config_reference_doc_is_up_to_date():
    assert DOC.read_text() == render_reference(), "run `make docs` and commit the result"


def test_every_key_is_documented():
    text = render_reference()
    assert "| `runtime.onnx.providers[].options` |" in text
    assert "| `sensors.power_rails[].channel` |" in text
    for line in text.splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), f"undocumented key: {line}"
