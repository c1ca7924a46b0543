"""The power policy's light variant when it is not served: pipelines keep their model, and the
agent says so once rather than at every policy check."""

from __future__ import annotations

import logging

from edge_agent.agent.pipelines import Pipelines
from edge_agent.serving import ModelRegistry


def test_an_unserved_light_variant_is_reported_once_not_at_every_check(caplog):
    pipelines = Pipelines([], ModelRegistry(), device_id="cam-1", register_progress=lambda *_: None)
    with caplog.at_level(logging.WARNING, logger="edge_agent.agent.pipelines"):
        for _ in range(5):  # the policy decides every check_interval_s
            pipelines.apply_power(2.0, "ghost")
        pipelines.apply_power(None, None)
        pipelines.apply_power(2.0, "ghost")
    warnings = [r for r in caplog.records if "ghost" in r.getMessage()]
    assert len(warnings) == 1
