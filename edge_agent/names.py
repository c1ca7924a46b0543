"""The rules for names, in one place: device ids, model names, groups, versions, pipelines.

A name travels: a device id is an MQTT topic level and a wave-hash input; a model name is a TUF
target path component and a store directory; a device group is the file name of its signed
rollout document (``rollouts/<group>.json``). Each rule here is the one that is safe for every
place its name goes, and every module that takes such a name (the config schema, the topic
scheme, the package manifest, rollout documents, TUF target paths, the CLI) checks it with the
rule below, so what one accepts the others accept too. (Before, the config allowed a group
``lobby.v2`` that rollout documents refused: such a device could never be targeted.)

What every rule keeps out: ``/`` (a path or topic separator), ``+`` ``#`` ``$`` (MQTT
wildcards and system topics), a leading ``.`` or ``-`` (hidden files, ``..``, option-like
arguments), whitespace and control characters, and more than 64 characters.

Published names (models, groups, device classes) are lowercase: they become file names in the
TUF repository, and a case-insensitive file system would merge ``Lab`` and ``lab``. Device ids
and served names keep their case (hostnames and file stems are mixed case); they never name a
file in the repository.

A rule is also pydantic metadata: ``device_id: Annotated[str, DEVICE_ID]`` validates with the
rule (the error names the key and the rule) and publishes the pattern in the JSON schema. This
module imports pydantic only when a pydantic model asks, so the topic scheme and the CLI can use
it without loading pydantic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from edge_agent.errors import EdgeAgentError, InvalidNameError

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic_core import CoreSchema

__all__ = [
    "DEVICE_CLASS",
    "DEVICE_ID",
    "GROUP",
    "MODEL_NAME",
    "PIPELINE_NAME",
    "RELEASE",
    "SERVED_NAME",
    "SHARE_GROUP",
    "VERSION",
    "DeviceClass",
    "DeviceId",
    "Group",
    "ModelName",
    "NameRule",
    "PipelineName",
    "ServedName",
    "Version",
]


@dataclass(frozen=True)
class NameRule:
    """One kind of name: what it is called, its pattern, and the rule in words."""

    what: str
    """What the name is, as an error message says it (``device id``)."""
    pattern: str
    """The anchored regular expression; also what JSON schemas publish."""
    rule: str
    """The rule in words, for error messages and ``--help``."""
    reserved: frozenset[str] = frozenset()
    """Names the pattern allows but something else already uses."""

    @property
    def anchored(self) -> str:
        """``^(?:pattern)$``, for JSON schemas and pydantic's ``pattern=``."""
        return f"^(?:{self.pattern})$"

    def matches(self, value: object) -> bool:
        """Whether ``value`` is a string that follows the rule."""
        return (
            isinstance(value, str)
            and re.fullmatch(self.pattern, value) is not None
            and value not in self.reserved
        )

    def message(self, value: object, field: str | None = None) -> str:
        """``<field>: invalid <what> '<value>': <rule>`` (the field only when given)."""
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        where = f"{field}: " if field else ""
        return f"{where}invalid {self.what} {shown}: {self.rule}"

    def check(
        self,
        value: str,
        field: str | None = None,
        error: type[EdgeAgentError] = InvalidNameError,
    ) -> str:
        """Return ``value`` if it follows the rule; raise ``error`` naming the field and rule.

        The default :class:`~edge_agent.errors.InvalidNameError` is also a ``ValueError``, so
        pydantic validators report it against the key that holds the name.
        """
        if not self.matches(value):
            raise error(self.message(value, field))
        return value

    # -- pydantic: ``Annotated[str, RULE]`` ----------------------------------------------------

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        """Validate as ``source`` (a str), then with :meth:`check` (pydantic adds the key)."""
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        """The JSON schema of a string, with this rule's pattern and words."""
        json_schema: dict[str, Any] = handler(schema)
        json_schema["pattern"] = self.anchored
        return json_schema


_RESERVED_LEVELS = frozenset({"registry", "monitor"})
"""Topic levels at the device position (``ea/v1/<device>/...``) that belong to services."""

DEVICE_ID = NameRule(
    "device id",
    r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}",
    "use 1-64 letters, digits, '_' or '-', starting with a letter or digit (and not "
    "'registry' or 'monitor', which are topic levels of the registry and the monitor)",
    _RESERVED_LEVELS,
)
"""One device: an MQTT topic level (``ea/v1/<device>/status``) and the input of wave hashing."""

MODEL_NAME = NameRule(
    "model name",
    r"[a-z0-9][a-z0-9._-]{0,63}",
    "use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
)
"""A published model: manifest ``name``, TUF target path ``models/<name>/<release>/...``,
store directory, rollout document ``model``, ``registry.models`` in the config."""

SERVED_NAME = NameRule(
    "served model name",
    r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
    "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
)
"""A model served from a local file (``models[].name``, default the file's stem); every
published model name is also a valid served name."""

GROUP = NameRule(
    "device group",
    r"[a-z0-9][a-z0-9._-]{0,63}",
    "use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
)
"""A rollout group: ``registry.group`` in the config and the signed ``rollouts/<group>.json``."""

DEVICE_CLASS = NameRule(
    "device class",
    r"[a-z0-9][a-z0-9.-]{0,62}",
    "use 1-63 lowercase letters, digits, '.' or '-', starting with a letter or digit",
)
"""A class of hardware (``device_configs/<class>.yaml``, a manifest's ``target_devices``)."""

PIPELINE_NAME = NameRule(
    "pipeline name",
    r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
    "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
)
"""A pipeline: the last level of its results topic ``ea/v1/<device>/results/<pipeline>``."""

SHARE_GROUP = NameRule(
    "shared-subscription group",
    r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}",
    "use 1-64 letters, digits, '_' or '-', starting with a letter or digit",
)
"""The monitors that split one channel (``$share/<group>/...``); not a device group."""

VERSION = NameRule(
    "version",
    r"\d+(\.\d+){0,2}([-+][0-9A-Za-z.-]+)?",
    "use MAJOR[.MINOR[.PATCH]] with an optional -prerelease or +build, e.g. 3 or 1.2.0-rc1",
)
"""A package's version string (manifest ``version``, ``min_agent_version``)."""

RELEASE = NameRule(
    "release number",
    r"[1-9][0-9]{0,8}",
    "use a whole number from 1 to 999999999",
)
"""The registry's release counter of a model, a TUF target path level."""

# Field types for pydantic models (typing only: no pydantic import here).
DeviceId = Annotated[str, DEVICE_ID]
ModelName = Annotated[str, MODEL_NAME]
ServedName = Annotated[str, SERVED_NAME]
Group = Annotated[str, GROUP]
DeviceClass = Annotated[str, DEVICE_CLASS]
PipelineName = Annotated[str, PIPELINE_NAME]
Version = Annotated[str, VERSION]
