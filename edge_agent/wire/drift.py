"""Drift on ``ea/v1/<device>/drift``: closed-window reports and alarm transitions.

Both travel in outbox envelopes (:class:`edge_agent.wire.telemetry.Envelope`). A
:class:`DriftReport` is ``WindowResult.report``: per signal (input, prediction, quality) a
severity (>= 1 drifting), the alarm level and details, the window's alarm transitions and its
profile. Each transition is also sent on its own, at alarm priority, as a
:class:`DriftAlarmEvent`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from edge_agent.errors import WireError
from edge_agent.wire._clean import Count, JsonObject, MaybeFlag, Number, Short, number, text
from edge_agent.wire._document import Document, Part

SIGNALS = ("input", "prediction", "quality")
"""The drift signals, in report order."""
MAX_FEATURES = 256
"""Most per-feature ratios kept from one report."""


def _level(value: Any) -> str | None:
    return value if value in ("ok", "alarm") else None


AlarmLevel = Annotated[Literal["ok", "alarm"] | None, BeforeValidator(_level)]


class Signal(Part):
    """One signal's score in a window."""

    severity: Number = None
    drifting: MaybeFlag = None
    alarm: AlarmLevel = None
    detail: JsonObject = None

    def ratios(self) -> dict[str, float]:
        """Per-feature severity ratios (input signal), rounded, at most MAX_FEATURES."""
        raw = (self.detail or {}).get("ratios")
        if not isinstance(raw, dict):
            return {}
        out: dict[str, float] = {}
        for feature, ratio in list(raw.items())[:MAX_FEATURES]:
            value = number(ratio)
            if value is not None:
                out[str(feature)[:64]] = round(value, 4)
        return out


class AlarmTransition(Part):
    """An alarm level change of one signal."""

    signal: Short = None
    from_: AlarmLevel = Field(default=None, alias="from")
    to: AlarmLevel = None


def _signals(value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("drift 'signals' is not a JSON object")
    return {
        name: signal if isinstance(signal, (dict, Signal)) else {}
        for name, signal in value.items()
        if name in SIGNALS
    }


class DriftReport(Document):
    """One closed drift window of one model."""

    WHAT = "drift report"

    model: Annotated[str, BeforeValidator(lambda value: text(value, 128) or None)]
    window: Count = 0
    samples: Count = 0
    dropped_samples: Count = 0
    signals: Annotated[dict[str, Signal], BeforeValidator(_signals)] = Field(default_factory=dict)
    transitions: list[AlarmTransition] = Field(default_factory=list)
    profile: JsonObject = None

    @field_validator("transitions", mode="before")
    @classmethod
    def _transitions(cls, value: Any) -> list[Any]:
        if not isinstance(value, list):
            return []
        return [t for t in value[: len(SIGNALS) * 4] if isinstance(t, (dict, AlarmTransition))]

    def signal(self, name: str) -> Signal:
        """The score of signal ``name`` (empty when the report lacks it)."""
        return self.signals.get(name) or Signal()


class DriftAlarmEvent(Document):
    """An alarm transition sent on its own: ``{"event": "drift_alarm", "model", ...}``."""

    WHAT = "drift alarm event"

    event: Literal["drift_alarm"] = "drift_alarm"
    model: Annotated[str | None, BeforeValidator(lambda value: text(value, 128))] = None
    signal: Short = None
    from_: AlarmLevel = Field(default=None, alias="from")
    to: AlarmLevel = None

    @classmethod
    def of(cls, model: str, transition: AlarmTransition) -> DriftAlarmEvent:
        """The event that announces ``transition`` of ``model`` on its own."""
        return cls.model_validate(
            {
                "model": model,
                "signal": transition.signal,
                "from": transition.from_,
                "to": transition.to,
            }
        )

    def reason(self) -> str:
        """``"<signal>: <from> -> <to>"`` for display."""
        return f"{self.signal}: {self.from_} -> {self.to}"


def decode_drift(data: dict[str, Any], *, cleaned: bool = False) -> DriftReport | DriftAlarmEvent:
    """The document inside a drift envelope (``cleaned``: it came from ``Envelope.decode``)."""
    if "event" in data:
        if data.get("event") != "drift_alarm":
            raise WireError("wrong_shape", f"drift event {text(data.get('event'), 40)!r}")
        return DriftAlarmEvent.from_object(data, cleaned=cleaned)
    return DriftReport.from_object(data, cleaned=cleaned)
