"""Config reload planning (pure)."""

from __future__ import annotations

from edge_agent.agent.reload import plan_reload
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
