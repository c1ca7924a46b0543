"""CLI options that tune a config setting take its default and bounds from the settings class."""

from __future__ import annotations

import click
import pytest

from edge_agent.cli._settings import field_range
from edge_agent.cli.models_cmd import models
from edge_agent.cli.run_cmd import run
from edge_agent.config import AgentConfig, ApiSettings, FetchSettings, SwapGateSettings
from edge_agent.delivery.layout import StoreLayout


def _options(command: click.Command) -> dict[str, click.Parameter]:
    return {p.name: p for p in command.params if p.name is not None}


def test_models_pull_defaults_and_bounds_are_the_fetch_settings():
    pull = models.commands["pull"]
    options = _options(pull)
    for option, field in [
        ("chunk_bytes", "chunk_bytes"),
        ("window", "window"),
        ("chunk_timeout", "chunk_timeout_s"),
        ("timeout", "deadline_s"),
    ]:
        assert options[option].default == FetchSettings.field_default(field), option
        expected = field_range(FetchSettings, field)
        assert options[option].type.to_info_dict() == expected.to_info_dict(), option
    assert options["layout"].default == StoreLayout.default().root


def test_run_quick_serve_defaults_are_the_config_defaults():
    options = _options(run)
    assert options["api"].default == ApiSettings.field_default("listen")
    assert options["device"].default == AgentConfig.field_default("device")


def test_field_range_reads_open_and_closed_bounds():
    chunk = field_range(FetchSettings, "chunk_bytes")
    assert isinstance(chunk, click.IntRange) and (chunk.min, chunk.max) == (256, 1 << 20)
    timeout = field_range(FetchSettings, "chunk_timeout_s")
    assert isinstance(timeout, click.FloatRange) and timeout.min_open and not timeout.max_open
    ratio = field_range(SwapGateSettings, "max_latency_ratio")
    assert ratio.min == 0 and ratio.min_open


def test_field_default_of_a_required_field_is_an_error():
    with pytest.raises(ValueError, match="required"):
        AgentConfig.field_default("device_id")


def test_operator_command_defaults_are_their_settings_defaults():
    from edge_agent.cli.fleet_cmd import rollout
    from edge_agent.cli.monitor_cmd import monitor
    from edge_agent.cli.registry_cmd import registry
    from edge_agent.fleet.monitor import AlertRules, IngestSettings, MonitorSettings
    from edge_agent.fleet.registry import RegistrySettings
    from edge_agent.fleet.rollout.controller import DEFAULT_WAVES
    from edge_agent.fleet.rollout.gates import GateThresholds

    gates, create = GateThresholds(), _options(rollout.commands["create"])
    for option, value in [
        ("max_error_rate", gates.max_error_rate),
        ("max_latency_ratio", gates.max_latency_ratio),
        ("min_agreement", gates.min_agreement),
        ("min_coverage", gates.min_coverage),
        ("min_inferences", gates.min_inferences),
        ("soak", gates.soak_s),
        ("wave_timeout", gates.wave_timeout_s),
    ]:
        assert create[option].default == value, option
    assert [float(w) for w in create["waves"].default.split(",")] == list(DEFAULT_WAVES)

    rules, serve = AlertRules(), _options(monitor.commands["serve"])
    assert serve["latency_slo_ms"].default == rules.latency_slo_ms
    assert serve["battery_low_pct"].default == rules.battery_low_pct
    assert serve["overheat_c"].default == rules.overheat_c
    assert serve["offline_after_min"].default * 60 == rules.offline_after_s
    assert serve["retention_days"].default == MonitorSettings().retention_days
    assert serve["group"].default == IngestSettings().group
    assert serve["device_rate"].default == IngestSettings().device_rate_per_s
    assert serve["max_models_per_device"].default == MonitorSettings().max_models_per_device
    assert serve["max_alerts_per_device"].default == rules.max_alerts_per_device
    assert serve["max_devices"].default == MonitorSettings().max_devices
    registry_serve = _options(registry.commands["serve"])
    assert registry_serve["workers"].default == RegistrySettings().workers
    assert registry_serve["tracked_devices"].default == RegistrySettings().tracked_devices


def test_convert_defaults_are_the_option_classes_defaults():
    from edge_agent.cli.convert_cmd import convert
    from edge_agent.convert.gates import Gates
    from edge_agent.convert.options import Onnx2TFLiteOptions, QuantizeOptions, TFLiteOptions
    from edge_agent.telemetry.profile import DEFAULT_BINS

    quantize, tflite = QuantizeOptions(), TFLiteOptions()
    expected = {
        "quantize": {
            "mode": quantize.mode,
            "method": quantize.method,
            "per_channel": quantize.per_channel,
            "activations": quantize.activations,
            "min_samples": quantize.min_samples,
        },
        "tflite": {
            "mode": tflite.mode,
            "io_type": tflite.io_type,
            "batch_size": tflite.batch_size,
            "min_samples": tflite.min_samples,
        },
        "onnx2tflite": {
            "io_type": Onnx2TFLiteOptions().io_type,
            "min_samples": Onnx2TFLiteOptions().min_samples,
        },
        "evaluate": {
            "min_agreement": Gates().min_agreement,
            "max_accuracy_drop": Gates().max_accuracy_drop,
        },
        "profile": {"bins": DEFAULT_BINS},
    }
    for command, defaults in expected.items():
        options = _options(convert.commands[command])
        assert {name: options[name].default for name in defaults} == defaults, command


def test_bench_defaults_are_the_benchmark_defaults():
    import inspect

    from edge_agent.cli.runtime_cmd import bench
    from edge_agent.runtime.tools.bench import benchmark

    signature = inspect.signature(benchmark).parameters
    options = _options(bench)
    assert options["runs"].default == signature["runs"].default
    assert options["warmup"].default == signature["warmup_runs"].default
