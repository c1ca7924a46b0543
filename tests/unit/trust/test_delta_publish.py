"""Publishing deltas (operator side) and rebuilding from them (device side), without a broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tuf.api.metadata import Metadata, TargetFile, Targets

from edge_agent import _zstd
from edge_agent.cli import cli
from edge_agent.errors import UpdateError
from edge_agent.trust.device.delta import rebuild, rebuild_path
from edge_agent.trust.operator.publish import DeltaPolicy, add_model
from edge_agent.trust.operator.repository import OperatorRepository
from tests.fakes.delivery_env import make_package
from tests.fakes.fine_tune import fine_tune

BASE = Path(__file__).resolve().parents[3] / "models" / "digits32" / "digits32_fp32.onnx"


@pytest.fixture
def repo(tmp_path: Path) -> OperatorRepository:
    return OperatorRepository.init(tmp_path / "repo", tmp_path / "keys")


def publish(
    repo: OperatorRepository,
    model: Path,
    version: str,
    policy: DeltaPolicy | None = None,
    notes: list[str] | None = None,
):
    package = make_package(model, repo.repo_dir.parent / "packages", "digits", version)
    return add_model(repo, package, policy, (notes if notes is not None else []).append)


def signed_targets(repo: OperatorRepository) -> dict[str, TargetFile]:
    md = Metadata[Targets].from_file(str(repo.metadata_dir / "targets.json"))
    return md.signed.targets


def test_fine_tune_is_published_with_a_signed_delta_pinned_by_the_model_target(
    repo: OperatorRepository, tmp_path: Path
):
    first = publish(repo, BASE, "1.0.0")
    assert first.deltas == ()  # nothing to start from
    tuned = fine_tune(BASE, tmp_path / "tuned" / BASE.name)
    second = publish(repo, tuned, "1.1.0")

    (pin,) = second.deltas
    assert (pin.from_release, pin.from_sha256, pin.from_length) == (1, first.sha256, first.length)
    assert pin.length <= 0.3 * second.length
    signed = signed_targets(repo)[pin.target_path]  # a target of its own, signed
    assert (signed.length, signed.hashes["sha256"]) == (pin.length, pin.sha256)
    stored = repo.targets_dir / signed.get_prefixed_paths()[0]
    with stored.open("rb") as handle:
        signed.verify_length_and_hashes(handle)
    rebuilt = tmp_path / "rebuilt"
    rebuild(BASE, stored, signed_targets(repo)[second.target_path], rebuilt)
    assert rebuilt.read_bytes() == tuned.read_bytes()


def test_no_delta_when_it_would_not_save_enough(repo: OperatorRepository, tmp_path: Path):
    publish(repo, BASE, "1.0.0")
    retrained = fine_tune(BASE, tmp_path / "all" / BASE.name, tensors=None)  # every weight moved
    notes: list[str] = []
    second = publish(repo, retrained, "1.1.0", notes=notes)
    assert second.deltas == ()
    assert len(notes) == 1 and "the limit is 60%" in notes[0]
    assert not [p for p in signed_targets(repo) if p.endswith(".zst")]


def test_operator_can_turn_deltas_off_or_pick_the_base(repo: OperatorRepository, tmp_path: Path):
    with pytest.raises(UpdateError, match=r"no such release \(published: none\)"):
        publish(repo, BASE, "0.9.0", DeltaPolicy(from_release=1))
    publish(repo, BASE, "1.0.0")
    tuned = fine_tune(BASE, tmp_path / "a" / BASE.name, seed=1)
    assert publish(repo, tuned, "1.1.0", DeltaPolicy(enabled=False)).deltas == ()
    again = fine_tune(BASE, tmp_path / "b" / BASE.name, seed=2)
    third = publish(repo, again, "1.2.0", DeltaPolicy(from_release=1))
    assert [d.from_release for d in third.deltas] == [1]
    with pytest.raises(UpdateError, match="no such release"):
        publish(
            repo,
            fine_tune(BASE, tmp_path / "c" / BASE.name, seed=3),
            "1.3.0",
            DeltaPolicy(from_release=9),
        )


def test_repo_add_model_flags(repo: OperatorRepository, tmp_path: Path):
    runner = CliRunner()
    first = make_package(BASE, tmp_path / "packages", "digits", "1.0.0")
    keys = ["--keys", str(tmp_path / "keys")]
    result = runner.invoke(cli, ["repo", "add-model", str(repo.repo_dir), str(first), *keys])
    assert result.exit_code == 0, result.output
    tuned = make_package(
        fine_tune(BASE, tmp_path / "t" / BASE.name), tmp_path / "packages", "digits", "1.1.0"
    )
    args = ["repo", "add-model", str(repo.repo_dir), str(tuned), *keys]
    refused = runner.invoke(cli, [*args, "--no-delta", "--delta-from", "1"])
    assert refused.exit_code != 0 and "contradict" in refused.output
    result = runner.invoke(cli, [*args, "--delta-from", "1", "--json"])
    assert result.exit_code == 0, result.output
    (variant,) = json.loads(result.output)["variants"]
    assert [d["from_release"] for d in variant["deltas"]] == [1]
    status = runner.invoke(cli, ["repo", "status", str(repo.repo_dir), "--json"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    newest = next(m for m in report["models"] if m["release"] == 2)
    assert [d["from_release"] for d in newest["deltas"]] == [1]
    # the delta is listed with its model, not as an unexplained "other" target
    assert not [p for p in report["other_targets"] if p.endswith(".zst")]
    table = runner.invoke(cli, ["repo", "status", str(repo.repo_dir)], terminal_width=200)
    assert table.exit_code == 0 and "from 1:" in table.output, table.output


def test_rebuild_from_an_altered_base_is_refused_and_leaves_nothing(tmp_path: Path):
    """The trust check is on the rebuilt model: a base that is not the pinned one fails."""
    tuned = fine_tune(BASE, tmp_path / "tuned" / BASE.name)
    (tmp_path / "delta").write_bytes(_zstd.encode(BASE, tuned))
    target = TargetFile.from_file("models/digits/2/m.onnx", str(tuned), ["sha256"])
    altered = tmp_path / "altered"
    data = bytearray(BASE.read_bytes())
    data[1000] ^= 0x01
    altered.write_bytes(bytes(data))
    final = tmp_path / "final.onnx"
    with pytest.raises(UpdateError, match="does not decode"):
        rebuild(altered, tmp_path / "delta", target, final)
    assert not final.exists() and not rebuild_path(final).exists()
    wrong = TargetFile(target.length, {"sha256": "0" * 64}, target.path)
    with pytest.raises(UpdateError, match="does not match the length and sha256"):
        rebuild(BASE, tmp_path / "delta", wrong, final)
    assert not final.exists() and not rebuild_path(final).exists()
