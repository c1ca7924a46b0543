"""The base of every config model (its own module so schema parts can import it freely)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticUndefined


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @classmethod
    def field_default(cls, name: str) -> Any:
        """The default of field ``name``, for a CLI option that must not retype it.

        Raises:
            KeyError: no such field.
            ValueError: the field is required (it has no default).
        """
        value = cls.model_fields[name].get_default(call_default_factory=True)
        if value is PydanticUndefined:
            raise ValueError(f"{cls.__name__}.{name} is required; it has no default")
        return value
