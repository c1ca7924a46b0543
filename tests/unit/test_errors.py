"""The error hierarchy: one class per kind of failure, each with its own name."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import edge_agent
from edge_agent import errors
from edge_agent.errors import ConfigError, EdgeAgentError, HttpError

PACKAGE = Path(edge_agent.__file__).parent


def _exception_classes() -> dict[str, list[str]]:
    """Class name -> modules defining it, for every class whose base looks like an error."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
            if any(b.endswith(("Error", "Exception")) or b == "WorkerCrashed" for b in bases):
                found[node.name].append(str(path.relative_to(PACKAGE)))
    return found


def test_no_two_error_classes_share_a_name():
    """Regression: two unrelated ``StoreError`` classes (sample store, monitor database) and
    two identical HTTP error classes; an ``except StoreError`` caught whichever was imported."""
    duplicated = {name: where for name, where in _exception_classes().items() if len(where) > 1}
    assert duplicated == {}


def test_both_http_servers_raise_the_one_http_error():
    from edge_agent.api import server
    from edge_agent.fleet.monitor import http

    assert server.HttpError is http.HttpError is errors.HttpError
    error = HttpError(404, "no such model")
    assert error.status == 404 and str(error) == "no such model"
    assert isinstance(error, EdgeAgentError)


def test_a_webhook_url_without_http_is_a_config_error():
    """The monitor's --webhook is checked like config: a clear exit-2 message, no traceback."""
    from edge_agent.fleet.monitor.delivery import WebhookSink

    with pytest.raises(ConfigError, match="must start with http:// or https://"):
        WebhookSink("ftp://example.com/hook")
