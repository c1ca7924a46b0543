"""``--broker`` and its five companions, the same on every command that talks to a broker.

The options are the agent config's ``broker:`` keys (``--broker-username`` is ``username``,
``--broker-password-file`` is ``password_file``, ...) and are turned into one
:class:`~edge_agent.config.BrokerSettings`, validated there, so a URL with ``user:pass@`` or TLS
files on a plain ``mqtt://`` URL is refused the same way on a command line and in a config file.
There is no ``--broker-password``: a password on a command line is in the shell's history and in
every process listing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from pydantic import ValidationError

from edge_agent.config import BrokerSettings

F = TypeVar("F", bound=Callable[..., Any])

_OPTION_OF = {
    "url": "--broker",
    "username": "--broker-username",
    "password_file": "--broker-password-file",
    "ca_file": "--broker-ca-file",
    "cert_file": "--broker-cert-file",
    "key_file": "--broker-key-file",
}


def _describe(field: str) -> str:
    description = BrokerSettings.model_fields[field].description or ""
    return description.replace("`", "")


def broker_settings(**values: Any) -> BrokerSettings:
    """The settings the options give, or a usage error naming the option that is wrong."""
    given = {key: value for key, value in values.items() if value is not None}
    try:
        return BrokerSettings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ", ".join(_OPTION_OF.get(str(part), str(part)) for part in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise click.UsageError("; ".join(problems)) from None


def broker_options(required: bool = True) -> Callable[[F], F]:
    """Add the broker options to a command; it receives them as ``broker: BrokerSettings``.

    With ``required=False`` the command gets ``broker=None`` when ``--broker`` is not given.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {field: kwargs.pop(f"broker_{field}") for field in _OPTION_OF}
            if values["url"] is None:
                rest = [_OPTION_OF[key] for key, value in values.items() if value is not None]
                if rest:
                    raise click.UsageError(f"{', '.join(rest)} given without --broker")
                kwargs["broker"] = None
            else:
                kwargs["broker"] = broker_settings(**values)
            return func(*args, **kwargs)

        existing = file_type = click.Path(exists=True, dir_okay=False, path_type=Path)
        options = [
            click.option("--broker", "broker_url", required=required, help=_describe("url")),
            click.option("--broker-username", help=_describe("username")),
            click.option("--broker-password-file", type=existing, help=_describe("password_file")),
            click.option("--broker-ca-file", type=file_type, help=_describe("ca_file")),
            click.option("--broker-cert-file", type=file_type, help=_describe("cert_file")),
            click.option("--broker-key-file", type=file_type, help=_describe("key_file")),
        ]
        decorated: Callable[..., Any] = wrapper
        for option in reversed(options):
            decorated = option(decorated)
        return cast(F, decorated)

    return decorate
