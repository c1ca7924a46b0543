"""Config reload planning (pure)."""

from __future__ import annotations

from edge_agent.agent.reload import LIVE, RESTART_ONLY, SECTIONS, plan_reload
from edge_agent.config import AgentConfig


def config(models: dict[str, str], **extra: object) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "device_id": "cam-1",
            "models": [{"name": n, "path": p} for n, p in models.items()],
            **extra,
        }
    )


def test_added_removed_and_changed_models():
    current = config({"a": "/m/a.onnx", "b": "/m/b.onnx"})
    fresh = config({"a": "/m/a2.onnx", "c": "/m/c.tflite"})
    running = {e.name: e for e in current.models}
    plan = plan_reload(running, current, fresh)
    assert [e.name for e in plan.add] == ["c"]
    assert plan.remove == ["b"]
    assert [(e.name, str(e.path)) for e in plan.swap] == [("a", "/m/a2.onnx")]
    assert plan.needs_restart == []


def test_models_delivered_by_the_registry_are_never_removed_by_a_reload():
    """Regression: a reload used to stop serving every model not listed under `models:`."""
    current = config({"a": "/m/a.onnx"})
    running = {e.name: e for e in current.models}
    plan = plan_reload(running, current, config({}), delivered={"a"})
    assert plan.remove == []


def test_sections_that_need_a_restart_are_named():
    current = config({}, api={"listen": "127.0.0.1:8080"})
    fresh = config({}, api={"listen": "127.0.0.1:9090"}, device="rpi5")
    assert plan_reload({}, current, fresh).needs_restart == ["api", "device"]


def pipeline(name: str, model: str = "a", folder: str = "/in") -> dict[str, object]:
    return {"name": name, "model": model, "source": {"type": "folder", "path": folder}}


def test_every_config_section_is_classified_live_or_restart():
    """Guards the SIGHUP bug: six sections were silently ignored on reload.

    A section added to the agent config must be classified in `reload.SECTIONS`, so that a
    reload either applies its change or says that a restart is needed.
    """
    assert set(SECTIONS) == set(AgentConfig.model_fields)
    assert set(LIVE) | set(RESTART_ONLY) == set(SECTIONS)
    assert all(applied in ("live", "restart") and why for applied, why in SECTIONS.values())


def test_changes_that_used_to_be_ignored_on_sighup_are_named_as_needing_a_restart():
    """Regression: pipelines, capture, telemetry, serving, runtime and device_id changes
    were silently ignored on SIGHUP; now each is applied live or named."""
    current = config({"a": "/m/a.onnx"})
    fresh = config(
        {"a": "/m/a.onnx"},
        device_id="cam-2",
        runtime={"threads": 2},
        telemetry={"latency": {"report_interval_s": 5}},
        serving={"stall_seconds": 5},
        capture={"enabled": True},
    )
    plan = plan_reload({"a": current.models[0]}, current, fresh)
    assert plan.needs_restart == ["capture", "device_id", "runtime", "serving", "telemetry"]
    assert plan.add == plan.swap == [] and plan.remove == []
    for section in plan.needs_restart:  # what runs keeps the start-up value
        assert getattr(plan.running, section) == getattr(current, section)


def test_pipelines_are_applied_live_removed_and_changed_ones_stop_new_and_changed_ones_start():
    current = config(
        {"a": "/m/a.onnx"},
        pipelines=[pipeline("same"), pipeline("gone"), pipeline("changed")],
    )
    fresh = config(
        {"a": "/m/a.onnx"},
        pipelines=[pipeline("same"), pipeline("changed", folder="/other"), pipeline("new")],
    )
    plan = plan_reload({"a": current.models[0]}, current, fresh)
    assert sorted(plan.stop_pipelines) == ["changed", "gone"]
    assert [(p.name, str(p.source.path)) for p in plan.start_pipelines] == [
        ("changed", "/other"),
        ("new", "/in"),
    ]
    assert plan.needs_restart == []
    assert plan.running.pipelines == fresh.pipelines


def test_an_unchanged_config_changes_nothing():
    current = config({"a": "/m/a.onnx"}, pipelines=[pipeline("p")])
    fresh = config({"a": "/m/a.onnx"}, pipelines=[pipeline("p")])
    plan = plan_reload({"a": current.models[0]}, current, fresh)
    assert (plan.add, plan.remove, plan.swap) == ([], [], [])
    assert (plan.stop_pipelines, plan.start_pipelines, plan.needs_restart) == ([], [], [])


def test_the_running_config_takes_live_sections_from_the_file_and_keeps_the_rest():
    current = config({"a": "/m/a.onnx"}, api={"listen": "127.0.0.1:8080"})
    fresh = config({"b": "/m/b.onnx"}, api={"listen": "127.0.0.1:9090"})
    plan = plan_reload({"a": current.models[0]}, current, fresh)
    assert [m.name for m in plan.running.models] == ["b"]
    assert plan.running.api.listen == "127.0.0.1:8080"
    assert plan.needs_restart == ["api"]


def test_a_changed_drift_profile_swaps_the_model_in_with_it():
    """A `models` change is applied live: a new profile for the same file was ignored."""
    current = config({"a": "/m/a.onnx"})
    fresh = AgentConfig.model_validate(
        {"device_id": "cam-1", "models": [{"name": "a", "path": "/m/a.onnx", "profile": "/p.json"}]}
    )
    plan = plan_reload({"a": current.models[0]}, current, fresh)
    assert [(e.name, str(e.profile)) for e in plan.swap] == [("a", "/p.json")]
    assert plan.needs_restart == []
