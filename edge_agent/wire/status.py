"""The retained status document on ``ea/v1/<device>/status``, and the last will.

The agent publishes it (retained) on connect, on every version change and periodically; the
broker publishes the last will (``{"device_id", "state": "offline"}``, no ``time``) when the
agent disappears. The monitor keeps the newest per device. The topic, not the document, names
the device: ``device_id`` is informational.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from edge_agent.wire._clean import MAX_NAME, Flag, JsonList, Name, Number, Short, Text, text
from edge_agent.wire._document import Document, Part
from edge_agent.wire.states import DeviceState

MAX_MODELS = 64
"""Most served models a status (or telemetry report) lists; more are ignored."""

MAX_SECTIONS = 32
"""Most config section names ``restart_needed`` lists; more are ignored."""


class ModelStatus(Part):
    """One served model: name, active version, delegate, and whether its backend degraded."""

    name: Annotated[str, BeforeValidator(lambda value: text(value, MAX_NAME) or "")]
    version: Name = None
    delegate: Short = None
    degraded: Flag = False
    variant: Name = None
    """The model file of the release's variant this device runs (``digits_int8.tflite``);
    left out of the document for a model that did not come from the registry."""

    @model_serializer(mode="wrap")
    def _without_unknown_variant(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("variant") is None:
            data.pop("variant", None)
        return data


def models_list(value: Any) -> list[Any]:
    """The usable entries of a ``models`` list: objects with a name, at most MAX_MODELS."""
    if not isinstance(value, list):
        return []
    return [
        entry
        for entry in value[:MAX_MODELS]
        if isinstance(entry, ModelStatus) or (isinstance(entry, dict) and text(entry.get("name")))
    ]


def section_names(value: Any) -> list[str]:
    """The usable entries of ``restart_needed``: short texts, at most MAX_SECTIONS."""
    if not isinstance(value, list):
        return []
    return [name for entry in value[:MAX_SECTIONS] if (name := text(entry, 64))]


class Status(Document):
    """A device's retained status; ``time`` None marks the last will."""

    WHAT = "status"

    device_id: Name = None
    state: DeviceState
    agent_version: Short = None
    device_class: Short = None
    models: list[ModelStatus] = Field(default_factory=list)
    api: Text = None
    uptime_s: Number = None
    pipelines: JsonList = Field(default_factory=list)
    restart_needed: list[str] = Field(default_factory=list)
    """Config sections a reload changed that take effect only at the next restart."""
    time: Number = None

    _models = field_validator("models", mode="before")(models_list)
    _restart_needed = field_validator("restart_needed", mode="before")(section_names)

    @classmethod
    def last_will(cls, device_id: str) -> Status:
        """The ``offline`` document the broker publishes when the agent disappears."""
        return cls(device_id=device_id, state=DeviceState.OFFLINE)

    @property
    def is_last_will(self) -> bool:
        """True for the broker's last will (no device time: stamped on receipt)."""
        return "time" not in self.model_fields_set or self.time is None

    def as_object(self) -> dict[str, Any]:
        """The JSON object; the last will is only ``{"device_id", "state": "offline"}``.

        It stays that small (no ``v``: absent means version 1) because brokers keep it for
        every session and it has kept that shape since the first agent.
        """
        if self.is_last_will and self.state is DeviceState.OFFLINE:
            return {"device_id": self.device_id, "state": self.state.value}
        return super().as_object()
