"""The base of every wire document: schema version, encode, decode, one error type."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from edge_agent.errors import WireError
from edge_agent.wire._clean import clean_json, dumps, loads_object

SCHEMA_VERSION = 1
"""The version of the documents this code writes (``"v"``) and the newest it reads.

A document without ``v`` is version 1 (agents before the field existed). A newer version is
refused with ``unknown_version`` rather than half-understood: operators update the monitor
before the fleet."""

D = TypeVar("D", bound="Document")


class Part(BaseModel):
    """A typed part of a document. Unknown keys are kept (and cleaned), not refused.

    Keeping unknown keys lets an older monitor read a newer agent's report of the same schema
    version, and keeps every byte the agent sends (pipeline stats, queue depths) on the wire.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Document(Part):
    """A whole JSON document that crosses the wire, with its schema version ``v``."""

    WHAT: ClassVar[str] = "document"
    """What the document is, for error messages."""

    v: int = SCHEMA_VERSION

    def encode(self) -> bytes:
        """Compact JSON bytes; text and numbers cleaned, so encoding cannot fail."""
        return dumps(self.as_object())

    def as_object(self) -> dict[str, Any]:
        """The JSON object (for the outbox, which frames and stores it)."""
        document = self.model_dump(mode="json", by_alias=True)
        cleaned = clean_json(document)
        assert isinstance(cleaned, dict)
        return cleaned

    @classmethod
    def decode(cls: type[D], payload: bytes | bytearray | memoryview | str) -> D:
        """The document in ``payload``; WireError (never anything else) when it is unusable."""
        return cls.from_object(loads_object(payload, cls.WHAT), cleaned=True)

    @classmethod
    def from_object(cls: type[D], document: Any, *, cleaned: bool = False) -> D:
        """The document from parsed JSON; WireError if it is unusable.

        ``cleaned`` says ``document`` came from :func:`~edge_agent.wire._clean.loads` (or a
        part of what it returned), so it is not cleaned a second time.
        """
        if not isinstance(document, dict):
            raise WireError("wrong_shape", f"{cls.WHAT} is not a JSON object")
        if not cleaned:
            document = clean_json(document)
        check_version(document, cls.WHAT)
        try:
            return cls.model_validate(document)
        except (ValidationError, ValueError, TypeError) as exc:
            raise WireError("wrong_shape", f"{cls.WHAT}: {_first_error(exc)}") from None


def check_version(document: dict[str, Any], what: str) -> None:
    """WireError ``unknown_version`` unless ``document`` is of a schema version this code reads."""
    version = document.get("v", SCHEMA_VERSION)
    if type(version) is not int or not 1 <= version <= SCHEMA_VERSION:
        raise WireError(
            "unknown_version",
            f"{what} has schema version {str(version)[:20]!r}; this side reads 1 to "
            f"{SCHEMA_VERSION} (update the receiving side first)",
        )


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        if errors:
            first = errors[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            return f"{where}: {first['msg']}"[:200]
    return str(exc)[:200]
