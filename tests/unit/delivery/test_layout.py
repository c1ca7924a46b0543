"""The agent's state directory: one object names every path under ``store_dir``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli.models_cmd import models
from edge_agent.config import AgentConfig, CaptureSettings
from edge_agent.delivery.layout import StoreLayout
from edge_agent.delivery.store import ModelStore
from edge_agent.errors import ConfigError


def test_every_path_lives_under_store_dir_with_trust_beside_the_model_store(tmp_path: Path):
    layout = StoreLayout(tmp_path)
    assert layout.models == tmp_path / "models"
    assert layout.trust_metadata == tmp_path / "trust" / "metadata"
    assert layout.trust_downloads == tmp_path / "trust" / "downloads"
    assert layout.samples == tmp_path / "samples"
    assert layout.outbox == tmp_path / "outbox.db"
    assert not layout.trust.is_relative_to(layout.models)


def test_capture_dir_is_capture_dir_when_set_else_samples(tmp_path: Path):
    layout = StoreLayout(tmp_path)
    assert layout.capture_dir(CaptureSettings()) == tmp_path / "samples"
    assert layout.capture_dir(CaptureSettings(dir=tmp_path / "elsewhere")) == tmp_path / "elsewhere"


def test_default_is_the_config_default_store_dir():
    assert StoreLayout.default().root == AgentConfig(device_id="d").store_dir


def test_a_model_store_given_as_store_dir_is_refused_with_the_fix(tmp_path: Path):
    """Regression: `models pull --store` took the model store itself and put trust/ inside it."""
    with ModelStore(tmp_path / "models"):
        pass
    StoreLayout(tmp_path).check()  # the agent's store_dir: fine
    with pytest.raises(ConfigError, match=r"model store itself.*store_dir"):
        StoreLayout(tmp_path / "models").check()


def test_models_list_reads_the_model_store_under_store_dir_and_refuses_a_model_store(
    tmp_path: Path,
):
    with ModelStore(tmp_path / "models"):
        pass
    runner = CliRunner()
    listed = runner.invoke(models, ["list", "--store-dir", str(tmp_path), "--json"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.strip() == "[]"
    refused = runner.invoke(models, ["list", "--store", str(tmp_path / "models"), "--json"])
    assert refused.exit_code == 2
    assert "model store itself" in refused.output
