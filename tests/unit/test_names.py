"""One rule per kind of name: what the config accepts, topics, manifests and rollouts accept too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent import names
from edge_agent.cli import _params
from edge_agent.config import AgentConfig, validate
from edge_agent.delivery.rollout_document import RolloutDocument, check_group, rollout_target_path
from edge_agent.errors import ConfigError, InvalidNameError, UpdateError
from edge_agent.transport import topics
from edge_agent.transport.topics import DeviceChannel
from edge_agent.trust.targets import model_target_path

# Text that is mostly name-like, with the characters that break topics and paths mixed in.
NAMEISH = st.text(
    alphabet=st.sampled_from("abcXYZ019._-/+#$ \n\x00é"), min_size=0, max_size=70
) | st.sampled_from(["lobby.v2", "registry", "monitor", "Lab", "a" * 64, "a" * 65, "..", "-x"])


def _agent(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "device_id": "cam-01",
        "broker": {"url": "mqtt://localhost:1883"},
        "registry": {"root": "/etc/edge-agent/root.json", "models": ["digits"]},
    }
    for key, value in changes.items():
        if key in ("group", "models"):
            data["registry"][key] = value
        else:
            data[key] = value
    return data


def _config_accepts(**changes: Any) -> bool:
    try:
        validate(AgentConfig, _agent(**changes), source="test")
    except ConfigError:
        return False
    return True


def _rollout_accepts(group: str = "lab", model: str = "digits") -> bool:
    try:
        check_group(group)
        rollout_target_path(group)
        RolloutDocument(
            id="r-1", group=group, model=model, release=2, previous=1, waves=(100.0,), salt="s"
        )
    except UpdateError:
        return False
    return True


def _topics_accept(device_id: str) -> bool:
    try:
        topics.device_topic(device_id, DeviceChannel.STATUS)
        topics.registry_request(device_id)
    except ValueError:
        return False
    return True


def test_a_group_with_a_dot_from_the_config_can_be_targeted_by_a_rollout():
    """Regression: the config accepted ``lobby.v2`` and rollout documents refused it, so a
    device in that group could never be targeted by any rollout."""
    assert _config_accepts(group="lobby.v2")
    assert _rollout_accepts(group="lobby.v2")
    assert rollout_target_path("lobby.v2") == "rollouts/lobby.v2.json"


@settings(max_examples=300, deadline=None)
@given(NAMEISH)
def test_config_and_rollout_documents_agree_on_every_group(group):
    assert _config_accepts(group=group) == _rollout_accepts(group=group)


@settings(max_examples=300, deadline=None)
@given(NAMEISH)
def test_config_and_topics_agree_on_every_device_id(device_id):
    assert _config_accepts(device_id=device_id) == _topics_accept(device_id)


@settings(max_examples=300, deadline=None)
@given(NAMEISH)
def test_config_rollouts_and_target_paths_agree_on_every_model_name(model):
    try:
        model_target_path(model, 1, "m.tflite")
        publishable = True
    except UpdateError:
        publishable = False
    assert _config_accepts(models=[model]) == _rollout_accepts(model=model) == publishable


@given(NAMEISH)
def test_every_published_model_name_can_also_be_served(name):
    if names.MODEL_NAME.matches(name):
        assert names.SERVED_NAME.matches(name)


def test_the_config_refuses_a_device_id_that_topics_reserve():
    """Regression: ``device_id: registry`` passed the config and crashed the agent at start-up
    when the topic scheme refused it."""
    assert not _config_accepts(device_id="registry")
    assert names.DEVICE_ID.reserved == {topics.REGISTRY, topics.MONITOR}


@pytest.mark.parametrize("rule", [names.DEVICE_ID, names.MODEL_NAME, names.GROUP])
def test_a_trailing_newline_is_not_a_name(rule):
    """Regression: ``re.match`` with ``$`` let ``cam-01\\n`` through into a topic level."""
    assert rule.matches("cam01") and not rule.matches("cam01\n")


def test_uppercase_groups_are_refused_everywhere():
    """Groups name files in the TUF repository: ``Lab`` and ``lab`` would merge on a
    case-insensitive file system, so both sides refuse uppercase."""
    assert not _config_accepts(group="Lab")
    assert not _rollout_accepts(group="Lab")


def test_config_errors_name_the_key_and_the_rule(tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text(
        "device_id: cam/01\nbroker:\n  url: mqtt://localhost\nregistry:\n  root: /r.json\n"
        "  models: [Digits]\n  group: Lobby\n"
    )
    from edge_agent.config import load_model

    with pytest.raises(ConfigError) as caught:
        load_model(AgentConfig, path)
    message = str(caught.value)
    assert f"{path}:1: device_id: invalid device id 'cam/01': use 1-64 letters" in message
    assert "registry.models.0: invalid model name 'Digits': use 1-64 lowercase" in message
    assert f"{path}:7: registry.group: invalid device group 'Lobby'" in message


def test_check_raises_the_callers_error_naming_field_and_rule():
    with pytest.raises(InvalidNameError, match=r"^--device-id: invalid device id 'a/b': use"):
        names.DEVICE_ID.check("a/b", "--device-id")
    with pytest.raises(ValueError):  # pydantic validators and older callers catch ValueError
        names.GROUP.check("a b")
    with pytest.raises(UpdateError, match="group: invalid device group"):
        names.GROUP.check("a b", "group", error=UpdateError)


def test_json_schema_publishes_the_pattern():
    schema = AgentConfig.model_json_schema()
    assert schema["properties"]["device_id"]["pattern"] == names.DEVICE_ID.anchored


def test_cli_parameter_refuses_with_a_usage_error():
    @click.command()
    @click.option("--device-id", type=_params.DEVICE_ID)
    def command(device_id: str) -> None:
        click.echo(device_id)

    ok = command.main(["--device-id", "cam-01"], standalone_mode=False)
    assert ok is None
    with pytest.raises(click.BadParameter, match="invalid device id 'a/b'"):
        command.main(["--device-id", "a/b"], standalone_mode=False)
