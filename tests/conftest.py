"""Shared fixtures: the sample models and a private Mosquitto broker.

Plugins: ``tests.fixtures.ci_skips`` makes an undeclared skip a failure when ``CI`` is set;
``pytester`` lets the harness tests run pytest on small generated suites.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.mosquitto import Broker, mosquitto_binary, start_broker

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"

pytest_plugins = ("pytester", "tests.fixtures.ci_skips")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The committed sample models (see models/README.md)."""
    return MODELS


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A private Mosquitto broker on a free port, stopped after the test."""
    if mosquitto_binary() is None:
        pytest.fail(
            "mosquitto is not installed: run `make test` (installs it as root) or "
            "apt-get install mosquitto"
        )
    broker = start_broker(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()
