"""Sanitising what arrives from the wire: the one place text and numbers are made safe.

Every decoder in :mod:`edge_agent.wire` passes the parsed JSON through :func:`clean_json`
before the typed document validates it, and every typed text or number field goes through
:func:`text` / :func:`number`. What comes out can be stored by SQLite and PostgreSQL and shown
by the dashboard whatever a device sent:

- text has no lone UTF-16 surrogates (an escaped U+D800 is valid JSON but no database can
  encode it), no NUL (PostgreSQL refuses it in text and JSONB), and a bounded length;
- numbers are finite and inside a range (``NaN``, ``Infinity`` and ``1e999`` are valid input to
  Python's JSON parser);
- nesting and container sizes are bounded, so a hostile document cannot make later code recurse
  or loop without end.

A value of the wrong type in an optional field becomes ``None`` (one bad sensor reading must not
drop the whole report); a missing or wrong required field is a :class:`WireError`.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import BeforeValidator

from edge_agent.errors import WireError

MAX_TEXT = 512
"""Longest free text (a reason, a version) kept from a document."""
MAX_NAME = 128
"""Longest name (a model, a device, a delegate) kept from a document."""
MAX_JSON_TEXT = 4096
"""Longest string kept inside a free-form JSON part (evidence, pipeline stats)."""
MAX_DEPTH = 32
"""Deepest nesting kept inside a document; deeper parts become null."""
MAX_ITEMS = 100_000
"""Most entries kept per JSON object or array (a legitimate profile stays far below)."""
MAX_NUMBER = 1e18
"""Numbers beyond +-this are out of range for every field (and for a BIGINT column)."""
MAX_INT = 2**62


def text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """``value`` as safe text of at most ``limit`` characters; None for None or a wrong type.

    Numbers become their decimal text (a version sent as ``2``); booleans, lists and objects
    are not text.
    """
    if isinstance(value, str):
        return clean_text(value, limit)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int) and abs(value) > MAX_INT:
            return None
        return str(value)[:limit]
    return None


def clean_text(value: str, limit: int = MAX_TEXT) -> str:
    """``value`` cut to ``limit`` characters, lone surrogates replaced, NUL removed."""
    value = value[:limit]
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value


def number(value: Any, low: float = -MAX_NUMBER, high: float = MAX_NUMBER) -> float | None:
    """``value`` as a finite float in ``[low, high]``, else None (wrong type, NaN, overflow)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        result = float(value)
    except OverflowError:  # an int with hundreds of digits
        return None
    if not math.isfinite(result) or not low <= result <= high:
        return None
    return result


def count(value: Any) -> int:
    """``value`` as a count: a whole number in ``[0, 2**62]``, else 0."""
    result = number(value, 0.0, float(MAX_INT))
    return 0 if result is None else int(result)


def clean_json(value: Any, depth: int = 0) -> Any:
    """A copy of parsed JSON that :func:`json.dumps` and every store can take.

    Strings are cleaned (:func:`clean_text`), numbers out of range become None, containers are
    cut to :data:`MAX_ITEMS` entries and :data:`MAX_DEPTH` levels.
    """
    if isinstance(value, str):
        return clean_text(value, MAX_JSON_TEXT)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) <= MAX_INT else None
    if isinstance(value, float):
        return value if math.isfinite(value) and abs(value) <= MAX_NUMBER else None
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= MAX_ITEMS:
                break
            out[clean_text(str(key), MAX_NAME)] = clean_json(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [clean_json(item, depth + 1) for item in value[:MAX_ITEMS]]
    return None


def loads(payload: bytes | bytearray | memoryview | str, where: str) -> Any:
    """Parsed and cleaned JSON of ``payload``; WireError ``not_json`` when it does not parse."""
    try:
        return clean_json(
            json.loads(bytes(payload) if isinstance(payload, memoryview) else payload)
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and ints longer than Python's digit limit
        raise WireError("not_json", f"{where}: {str(exc)[:120]}") from None


def loads_object(payload: bytes | bytearray | memoryview | str, where: str) -> dict[str, Any]:
    """:func:`loads`, and the result must be a JSON object (else WireError ``wrong_shape``)."""
    document = loads(payload, where)
    if not isinstance(document, dict):
        raise WireError("wrong_shape", f"{where} is not a JSON object")
    return document


def dumps(document: Any) -> bytes:
    """Compact JSON bytes of an already clean, JSON-able value."""
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _text_of(limit: int) -> BeforeValidator:
    return BeforeValidator(lambda value: text(value, limit))


def _object_or_none(value: Any) -> dict[str, Any] | None:
    return clean_json(value) if isinstance(value, dict) else None


def _list_or_empty(value: Any) -> list[Any]:
    return clean_json(value) if isinstance(value, (list, tuple)) else []


def _bool(value: Any) -> bool:
    return value is True


def _bool_or_none(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


Text = Annotated[str | None, _text_of(MAX_TEXT)]
"""Free text (a reason): cleaned, at most :data:`MAX_TEXT` characters, None if not text."""
Name = Annotated[str | None, _text_of(MAX_NAME)]
"""A name or version: cleaned, at most :data:`MAX_NAME` characters, None if not text."""
Short = Annotated[str | None, _text_of(64)]
"""A short label (a delegate, a device class, a mode): at most 64 characters."""
Number = Annotated[float | None, BeforeValidator(lambda value: number(value))]
"""A finite float within +-:data:`MAX_NUMBER`, else None."""
Percent = Annotated[float | None, BeforeValidator(lambda value: number(value, 0.0, 100.0))]
"""A percentage in [0, 100], else None."""
Count = Annotated[int, BeforeValidator(count)]
"""A count in [0, 2**62]; anything else is 0."""
Flag = Annotated[bool, BeforeValidator(_bool)]
"""True only for JSON ``true``."""
MaybeFlag = Annotated[bool | None, BeforeValidator(_bool_or_none)]
"""A boolean, or None when absent or not a boolean."""
JsonObject = Annotated[dict[str, Any] | None, BeforeValidator(_object_or_none)]
"""A free-form JSON object (evidence, a sketch, a profile), cleaned; None if not an object."""
JsonList = Annotated[list[Any], BeforeValidator(_list_or_empty)]
"""A free-form JSON array, cleaned; empty if not an array."""
