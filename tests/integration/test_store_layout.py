"""`edge-agent models pull` and the agent agree on where everything under store_dir lives."""

from __future__ import annotations

import subprocess
from pathlib import Path

from edge_agent.agent.process import Agent
from edge_agent.config import AgentConfig
from edge_agent.delivery.layout import StoreLayout
from tests.fakes.delivery_env import delivery_env, pull_command
from tests.fixtures.mosquitto import Broker


def test_a_store_filled_by_models_pull_is_the_one_the_agent_serves_from(
    tmp_path: Path, mosquitto: Broker, models_dir: Path
):
    """Regression: `models pull --store` put trust/ inside the model store, the agent beside it."""
    store_dir = tmp_path / "state"
    layout = StoreLayout(store_dir)
    with delivery_env(tmp_path / "env", mosquitto.url) as env:
        env.publish(models_dir / "digits" / "digits_fp32.onnx", "digits", "1.0.0")
        pulled = subprocess.run(
            pull_command(env, store_dir, "dev-7"), capture_output=True, text=True, timeout=60
        )
        assert pulled.returncode == 0, pulled.stderr
        assert (layout.trust_metadata / "root.json").is_file()
        assert (layout.trust_metadata / "timestamp.json").is_file()
        assert layout.trust_downloads.is_dir()
        assert not (layout.models / "trust").exists()
        served_by_pull = env.server.served_bytes("dev-7", "targets/")

        config = AgentConfig.model_validate(
            {
                "device_id": "dev-7",
                "device": "x86-generic",
                "store_dir": str(store_dir),
                "api": {"listen": "127.0.0.1:0"},
                "broker": {"url": mosquitto.url},
                "registry": {"root": str(env.root_json), "models": ["digits"]},
            }
        )
        agent = Agent(config)
        agent.start()
        try:
            served = agent.models.get("digits")  # from the pulled store, before any download
            assert served is not None and served.active.version == "1"
            assert agent.updates is not None and agent.updates.store.root == layout.models
        finally:
            agent.stop()
        assert env.server.served_bytes("dev-7", "targets/") == served_by_pull
