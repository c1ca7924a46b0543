"""YAML loading with errors a person can act on.

PyYAML's composed node tree knows the line of every key; pydantic knows which key is wrong. This
module joins the two, so a failure reads ``rpi5.yaml:14: runtime.threads: Input should be
greater than or equal to 1 (got 0)`` instead of a stack trace.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from edge_agent.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)
Loc = tuple[str | int, ...]


def read_yaml(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse a YAML file; return its data and the 1-based line of every key path.

    Raises ConfigError for a missing or unreadable file, a YAML syntax error (with its line) and
    duplicate keys, which plain YAML loading would silently collapse.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    lines: dict[Loc, int] = {}
    if node is not None:
        for loc, line in _key_lines(node, (), path):
            lines[loc] = line
    return data, lines


def _key_lines(node: yaml.Node, loc: Loc, path: Path) -> Iterator[tuple[Loc, int]]:
    yield loc, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise ConfigError(
                    f"{path}:{key_node.start_mark.line + 1}: key '{key}' appears twice; "
                    "keep one of them"
                )
            seen.add(key)
            yield (*loc, key), key_node.start_mark.line + 1
            yield from _key_lines(value_node, (*loc, key), path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _key_lines(item, (*loc, index), path)


def load_model(model: type[ModelT], path: Path) -> ModelT:
    """Load and validate ``path`` as ``model``; every problem is reported in one ConfigError."""
    data, lines = read_yaml(path)
    if data is None:
        raise ConfigError(f"{path}: the file is empty; see docs/config-reference.md")
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}:1: expected a mapping of keys at the top level, got {type(data).__name__}"
        )
    return validate(model, data, source=str(path), lines=lines)


def validate(
    model: type[ModelT],
    data: Mapping[str, Any],
    *,
    source: str,
    lines: Mapping[Loc, int] | None = None,
) -> ModelT:
    """Validate ``data`` as ``model``; errors name ``source``, the line, key path and fix."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(model, error, source, lines or {}) for error in exc.errors()]
        noun = "problem" if len(problems) == 1 else "problems"
        raise ConfigError(
            f"{source}: {len(problems)} {noun}:\n  " + "\n  ".join(problems)
        ) from None


def _describe(
    model: type[BaseModel], error: Mapping[str, Any], source: str, lines: Mapping[Loc, int]
) -> str:
    loc: Loc = tuple(part for part in error["loc"] if _is_data_loc(part))
    where = f"{source}:{_line_of(loc, lines)}" if lines else source
    dotted = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        hint = ""
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if close:
            hint = f"; did you mean '{close[0]}'?"
        return f"{where}: {dotted}: unknown key{hint} Allowed here: {', '.join(allowed)}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{where}: {dotted}: required key is missing"
    return f"{where}: {dotted}: {message} (got {error.get('input')!r})"


def _is_data_loc(part: object) -> bool:
    """Pydantic adds union-branch tags (e.g. ``function-after[...]``) to locations; drop them."""
    return isinstance(part, int) or (isinstance(part, str) and "[" not in part)


def _line_of(loc: Loc, lines: Mapping[Loc, int]) -> int:
    """Line of the deepest key of ``loc`` that the file has (a missing key: its parent's)."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the model found at ``loc`` inside ``model`` (walking lists and dicts)."""
    current: Any = model
    for part in loc:
        current = _submodel(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _submodel(annotation: Any, part: str | int) -> Any:
    for candidate in _unwrap(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            field = candidate.model_fields.get(str(part))
            if field is not None:
                return field.annotation
        origin = typing.get_origin(candidate)
        if origin in (list, tuple) and isinstance(part, int):
            return typing.get_args(candidate)[0]
        if origin is dict:
            return typing.get_args(candidate)[1]
    return None


def _unwrap(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return [annotation]
