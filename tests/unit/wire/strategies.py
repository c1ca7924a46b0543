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
