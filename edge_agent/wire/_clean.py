"""Sanitising what arrives from the wire: the one place text and numbers are made safe.

Every decoder in :mod:`edge_agent.wire` parses with :func:`loads`, which reads non-finite
numbers as null and passes the parsed JSON through :func:`clean_json` whenever the text could
hold an unsafe string (:func:`needs_cleaning`, a substring test: the benign documents agents
send are not walked), and every typed text or number field goes through :func:`text` /
:func:`number`. What comes out
can be stored by SQLite and PostgreSQL and shown by the dashboard whatever a device sent:

- text has no lone UTF-16 surrogates (an escaped U+D800 is valid JSON but no database can
  encode it), no NUL (PostgreSQL refuses it in text and JSONB), and a bounded length;
- numbers are finite and inside a range (``NaN``, ``Infinity`` and ``1e999`` are valid input to
  Python's JSON parser);
- a walked document is cut to :data:`MAX_DEPTH` levels and :data:`MAX_ITEMS` entries per
  container; nesting beyond the JSON parser's recursion limit is ``not_json``, and writing a
  deep free-form part back out is a WireError (:func:`dumps_text`), never a RecursionError.

A value of the wrong type in an optional field becomes ``None`` (one bad sensor reading must not
drop the whole report); a missing or wrong required field is a :class:`WireError`.
"""

from __future__ import annotations

import json
import math
import re
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

    Strings are cleaned (:func:`clean_text`), non-finite floats become None, containers are
    cut to :data:`MAX_ITEMS` entries and :data:`MAX_DEPTH` levels.
    """
    if isinstance(value, str):
        return clean_text(value, MAX_JSON_TEXT)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):  # typed fields check their own range
        return value
    if isinstance(value, float):  # typed fields check their own range
        return value if math.isfinite(value) else None
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


_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
"""An escaped NUL or UTF-16 surrogate: the only ways valid UTF-8 JSON can carry them."""


def _finite_or_none(literal: str) -> float | None:
    value = float(literal)
    return value if math.isfinite(value) else None  # 1e999 parses as infinity


_DECODER = json.JSONDecoder(parse_float=_finite_or_none, parse_constant=lambda _name: None)
"""JSON with NaN, Infinity and overflowing floats read as null: numbers are safe as parsed."""


def needs_cleaning(text: str) -> bool:
    """Whether parsed ``text`` may hold a NUL or a lone surrogate, so it must be walked.

    It may say yes for a benign document (a valid surrogate pair); never no for an unsafe one.
    A substring test, and a search only when the text has escapes at all: the benign documents
    agents send are not walked.
    """
    if "\\u" in text and _ESCAPE.search(text) is not None:
        return True
    return not text.isascii() and _has_lone_surrogate(text)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def loads(payload: bytes | bytearray | memoryview | str, where: str) -> Any:
    """Parsed and cleaned JSON of ``payload``; WireError ``not_json`` when it does not parse.

    Bytes must be UTF-8 (RFC 8259); a surrogate encoded as UTF-8 is not, so it is refused here.
    """
    try:
        text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
        document = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and ints longer than Python's digit limit
        raise WireError("not_json", f"{where}: {str(exc)[:120]}") from None
    if needs_cleaning(text):
        try:
            return clean_json(document)
        except RecursionError:
            raise WireError("not_json", f"{where} is nested too deeply") from None
    return document


def loads_object(payload: bytes | bytearray | memoryview | str, where: str) -> dict[str, Any]:
    """:func:`loads`, and the result must be a JSON object (else WireError ``wrong_shape``)."""
    document = loads(payload, where)
    if not isinstance(document, dict):
        raise WireError("wrong_shape", f"{where} is not a JSON object")
    return document


def dumps(document: Any) -> bytes:
    """Compact JSON bytes of an already clean, JSON-able value; WireError if it is not."""
    return dumps_text(document).encode()


def dumps_text(document: Any) -> str:
    """Compact JSON text (ASCII) of a clean value; WireError (never another error) if not."""
    try:
        return json.dumps(document, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise WireError("wrong_shape", f"cannot be written as JSON: {str(exc)[:120]}") from None


def _text_of(limit: int) -> BeforeValidator:
    def validate(value: Any) -> str | None:
        if type(value) is str and len(value) <= limit and value.isascii() and "\x00" not in value:
            return value  # the common case, without a second call
        return text(value, limit)

    return BeforeValidator(validate)


def _number_or_none(value: Any) -> float | None:
    if type(value) is float and -MAX_NUMBER <= value <= MAX_NUMBER:
        return value  # finite: loads reads NaN and infinities as null
    return number(value)


def _object_or_none(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None  # cleaned by loads / from_object


def _list_or_empty(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


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
Number = Annotated[float | None, BeforeValidator(_number_or_none)]
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
"""A free-form JSON object (evidence, a sketch, a profile); None if not an object. Its content
is as clean as the document it came in (see :func:`loads`)."""
JsonList = Annotated[list[Any], BeforeValidator(_list_or_empty)]
"""A free-form JSON array, cleaned; empty if not an array."""
