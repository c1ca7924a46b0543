"""Config errors name the file, line, key path, bad value and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import AgentConfig, DeviceConfig, check_config_file, load_model
from edge_agent.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "device.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_for(path: Path, model: type = DeviceConfig) -> str:
    with pytest.raises(ConfigError) as caught:
        load_model(model, path)
    return str(caught.value)


def test_out_of_range_value_names_file_line_key_and_value(tmp_path):
    path = write(tmp_path, "device_class: rpi4\nruntime:\n  threads: 0\n")
    message = error_for(path)
    assert f"{path}:3: runtime.threads:" in message
    assert "greater than or equal to 1" in message
    assert "(got 0)" in message


def test_unknown_key_is_rejected_with_a_suggestion_and_the_allowed_keys(tmp_path):
    path = write(tmp_path, "device_class: rpi4\nsensors:\n  thermal_zone: []\n")
    message = error_for(path)
    assert f"{path}:3: sensors.thermal_zone: unknown key" in message
    assert "did you mean 'thermal_zones'?" in message
    assert "power_supplies" in message


def test_bad_delegate_name_inside_a_list_points_at_its_line(tmp_path):
    path = write(
        tmp_path,
        "device_class: x\nruntime:\n  litert:\n    delegates:\n"
        "      - name: xnnpack\n      - name: edgtpu\n",
    )
    message = error_for(path)
    assert f"{path}:6: runtime.litert.delegates.1.name:" in message
    assert "'edgetpu'" in message and "(got 'edgtpu')" in message


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, "device_class: x\nruntime:\n  threads: -1\n  bogus: 1\n")
    message = error_for(path)
    assert "2 problems" in message
    assert "runtime.threads" in message and "runtime.bogus" in message


def test_external_delegate_without_library_says_what_is_missing(tmp_path):
    path = write(
        tmp_path, "device_class: x\nruntime:\n  litert:\n    delegates:\n      - name: external\n"
    )
    assert "needs `library:`" in error_for(path)


def test_missing_required_key_is_named(tmp_path):
    path = write(tmp_path, "models: []\n", name="agent.yaml")
    assert "device_id: required key is missing" in error_for(path, AgentConfig)


def test_yaml_syntax_error_gives_the_line(tmp_path):
    path = write(tmp_path, "device_class: x\nruntime:\n  threads: [1,\n")
    message = error_for(path)
    assert "invalid YAML" in message
    assert f"{path}:" in message


def test_duplicate_keys_are_an_error_not_silently_collapsed(tmp_path):
    path = write(tmp_path, "device_class: x\nruntime:\n  threads: 2\n  threads: 4\n")
    message = error_for(path)
    assert f"{path}:4: key 'threads' appears twice" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_empty_or_non_mapping_files_are_explained(tmp_path, text, expected):
    assert expected in error_for(write(tmp_path, text))


def test_missing_file_is_named(tmp_path):
    assert "no such file" in error_for(tmp_path / "nope.yaml")


def test_check_tells_agent_and_device_configs_apart(tmp_path):
    device = write(tmp_path, "device_class: rpi4\n")
    agent = write(tmp_path, "device_id: cam-01\ndevice: rpi4\n", name="agent.yaml")
    assert check_config_file(device)[0] == "device config"
    assert check_config_file(agent)[0] == "agent config"
    with pytest.raises(ConfigError, match="cannot tell what this file is"):
        check_config_file(write(tmp_path, "threads: 1\n", name="other.yaml"))


def test_agent_config_rejects_topic_unsafe_device_ids_and_duplicate_models(tmp_path):
    path = write(
        tmp_path,
        "device_id: cam/01\nmodels:\n  - {name: a, path: a.onnx}\n  - {name: a, path: b.onnx}\n",
        name="agent.yaml",
    )
    message = error_for(path, AgentConfig)
    assert "device_id" in message and "cam/01" in message
    assert "repeated: a" in message


def test_agent_config_with_unknown_device_class_is_rejected(tmp_path):
    path = write(tmp_path, "device_id: cam-01\ndevice: rpi9\n", name="agent.yaml")
    with pytest.raises(ConfigError, match="unknown device config 'rpi9'"):
        check_config_file(path)


def test_a_pipeline_cannot_use_a_model_that_is_not_served(tmp_path):
    """`serve: false` marks a light variant loaded only when swapped in; no pipeline runs it."""
    path = write(
        tmp_path,
        "device_id: cam-1\n"
        "models:\n"
        "  - {name: digits, path: digits.tflite}\n"
        "  - {name: digits-light, path: light.tflite, serve: false}\n"
        "pipelines:\n"
        "  - name: door\n"
        "    model: digits-light\n"
        "    source: {type: video, path: door.avi}\n"
        "    sinks: [{type: jsonl, path: out.jsonl}]\n",
        "agent.yaml",
    )
    message = error_for(path, AgentConfig)
    assert "uses model 'digits-light', which has `serve: false`" in message
