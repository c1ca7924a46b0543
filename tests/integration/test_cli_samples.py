"""`edge-agent samples list | export` on a real store."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from edge_agent.capture.store import Sample, SampleStore
from edge_agent.cli import cli


def make_store(path, count=3):
    with SampleStore(path) as store:
        return [
            store.add(
                Sample(
                    "digits32" if i % 2 == 0 else "other",
                    "1",
                    "cpu",
                    0.001,
                    "random",
                    {"input": np.full((1, 4), i, np.float32)},
                    {"p": np.array([[0.2, 0.8]], np.float32)},
                    prediction=1,
                    confidence=0.8,
                )
            )
            for i in range(count)
        ]


def test_list_json_and_table(tmp_path):
    ids = make_store(tmp_path / "s")
    result = CliRunner().invoke(
        cli, ["samples", "list", "--dir", str(tmp_path / "s"), "--json", "--model", "digits32"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in rows] == [ids[2], ids[0]]  # newest first
    table = CliRunner().invoke(cli, ["samples", "list", "--dir", str(tmp_path / "s")])
    assert table.exit_code == 0 and "3 samples" in table.output


def test_export_writes_npz_and_metadata(tmp_path):
    ids = make_store(tmp_path / "s")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["samples", "export", str(out), "--dir", str(tmp_path / "s"), "--id", ids[1]]
    )
    assert result.exit_code == 0, result.output
    meta = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [m["id"] for m in meta] == [ids[1]]
    with np.load(out / f"{ids[1]}.npz") as archive:
        assert archive["input:input"].tolist() == [[1.0] * 4]


def test_missing_store_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["samples", "list", "--dir", str(tmp_path / "none")])
    assert result.exit_code != 0 and "no sample store" in str(result.exception)
