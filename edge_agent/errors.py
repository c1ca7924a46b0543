"""The one error hierarchy of edge-agent.

Every error says what is wrong, where, and what to do about it. The CLI prints the message of an
``EdgeAgentError`` without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeAgentError(Exception):
    """Base of every error edge-agent raises on purpose."""


class ConfigError(EdgeAgentError):
    """A config file is missing, malformed or fails validation."""


class ModelError(EdgeAgentError):
    """A model file cannot be loaded: missing, unreadable, truncated, wrong format."""


class InputError(EdgeAgentError):
    """Inputs given to a model do not match its input spec (name, shape, dtype)."""


class RuntimeNotInstalledError(EdgeAgentError):
    """The runtime a model format needs is not installed; the message names the package."""


class DelegateError(EdgeAgentError):
    """A hardware delegate / execution provider failed and the policy forbids falling back."""


class UpdateError(EdgeAgentError):
    """A model update could not be fetched, verified or installed."""


class TransportError(EdgeAgentError):
    """The MQTT transport failed (broker unreachable, refused, protocol error)."""


class WireError(EdgeAgentError, ValueError):
    """A document from the wire (status, telemetry, command, chunk header...) cannot be used.

    ``reason`` is a short label for counters (``not_json``, ``wrong_shape``, ``too_large``,
    ``unknown_version``); the message says what was wrong. Decoders in :mod:`edge_agent.wire`
    raise nothing else, whatever the bytes.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class InvalidNameError(EdgeAgentError, ValueError):
    """A device id, model name, group or version breaks its rule (see ``edge_agent.names``).

    Also a ``ValueError``, so a pydantic validator reports it against the key that holds it.
    """


class SampleStoreError(EdgeAgentError):
    """The sample store cannot be opened or written (path, permissions, full disk, corrupt)."""


class HttpError(EdgeAgentError):
    """A request to one of edge-agent's HTTP servers fails; ``status`` is the answer's code.

    Raised by request handlers (the inference API, the monitor's dashboard and API) and turned
    into a response by the server; it never reaches a user as a traceback.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
