"""Hypothesis strategies for hostile wire input, shared by the wire's property tests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

hostile_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()),
    max_size=40,
) | st.sampled_from(["\ud800", "\udfff", "\x00", "a\x00b\ud800", "x" * 5000])
hostile_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**400, -(10**400), 2**63, -1, 0]),
)
scalar = st.one_of(st.none(), st.booleans(), hostile_number, hostile_text)
json_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(hostile_text, inner, max_size=5),
    max_leaves=30,
)


def encode(value: Any) -> bytes:
    """Valid (Python-flavoured) JSON: surrogates escaped, NaN/Infinity as Python writes them."""
    try:
        return json.dumps(value).encode()
    except ValueError:  # an int too long for str()
        return b"{}"


def field_paths(value: Any, width: int = 4, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a field of a real document (the first ``width`` items of each list), for
    mutating one field at a time."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += field_paths(item, width, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:width]):
            out += field_paths(item, width, (*prefix, index))
    return out


def replace_at(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``value`` with the field at ``path`` replaced by ``new``."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replace_at(value[head], rest, new)}
    copy = list(value)
    copy[head] = replace_at(copy[head], rest, new)
    return copy
