"""`edge-agent fleet rollout ...` on a real repository (no broker needed to create/pause)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from tuf.api.metadata import TargetFile

from edge_agent.cli import cli
from edge_agent.fleet.rollout.publish import published_rollout
from edge_agent.trust.operator.repository import OperatorRepository
from edge_agent.trust.targets import model_custom, model_target_path


def make_repo(tmp: Path) -> Path:
    repo = OperatorRepository.init(tmp / "repo")
    for release in (1, 2):
        path = model_target_path("digits", release, "digits.onnx")
        target = TargetFile.from_data(path, f"m{release}".encode(), ["sha256"])
        target.unrecognized_fields["custom"] = model_custom("digits", release, {"version": "1"})
        with repo.edit_targets() as md:
            md.signed.targets[path] = target
    return tmp / "repo"


def run(*args: str) -> dict | list | str:  # type: ignore[type-arg]
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    try:
        return json.loads(result.output)  # type: ignore[no-any-return]
    except ValueError:
        return result.output


def test_create_pause_resume_abort_and_status(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    devices = tmp_path / "devices.txt"
    devices.write_text("# lab devices\n" + "\n".join(f"d{i}" for i in range(40)) + "\n")
    base = ["fleet", "rollout"]
    common = ["--repo", str(repo), "--group", "lab"]
    (created,) = run(
        *base,
        "create",
        *common,
        "--model",
        "digits",
        "--release",
        "2",  # type: ignore[misc]
        "--devices",
        str(devices),
        "--waves",
        "10,100",
        "--json",
    )
    assert created["previous"] == 1 and created["status"] == "rolling"
    assert sum(created["wave_sizes"]) == 40
    assert (tmp_path / "repo.rollouts.json").is_file()
    (paused,) = run(*base, "pause", *common, "--json")  # type: ignore[misc]
    assert paused["document"]["state"] == "paused"
    run(*base, "resume", *common)
    table = run(*base, "status", "--repo", str(repo))
    assert isinstance(table, str) and "lab" in table and "rolling" in table
    (aborted,) = run(*base, "abort", *common, "--json")  # type: ignore[misc]
    assert aborted["status"] == "aborted"
    doc = published_rollout(OperatorRepository(repo), "lab")
    assert doc is not None and doc.state == "rolled_back"


def test_errors_are_clear(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    result = CliRunner().invoke(
        cli, ["fleet", "rollout", "pause", "--repo", str(repo), "--group", "nope"]
    )
    assert result.exit_code != 0
    assert "no rollout for group 'nope'" in str(result.exception)
