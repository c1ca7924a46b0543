"""How a component reaches the MQTT broker: one class for ``broker:`` and every ``--broker*``.

The agent's ``broker:`` section and every command's ``--broker*`` options are this class.

Why one class: the agent, the registry, the monitor, ``models pull`` and the simulator all log in
to the same broker with the same kinds of credentials. Each used to take only a URL, so the
shipped broker (no anonymous clients, one user per component) could not be reached by half of
them, and ``user:pass@`` in a URL was silently dropped. Here the URL carries no secret (it is
refused, with a pointer to ``password_file``), the password is read from a file so it is never on
a command line, in a process list or in a log, and TLS is on exactly when the scheme is
``mqtts://``, with verification of the broker's certificate always on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from edge_agent.config.base import StrictModel


class BrokerSettings(StrictModel):
    """How a component reaches its MQTT broker: address, identity and TLS files."""

    url: str = Field(
        pattern=r"^mqtts?://[^/\s]+(:\d+)?/?$",
        description="`mqtt://host:1883` or `mqtts://host:8883` (TLS, the broker's certificate "
        "verified against `ca_file`, else the system's CAs). No `user:pass@` in it.",
    )
    username: str | None = Field(
        default=None,
        min_length=1,
        description="MQTT user name: the device id for a device, `registry`, `monitor`, ... "
        "for the operator services (see deploy/mosquitto.acl).",
    )
    password_file: Path | None = Field(
        default=None,
        description="File holding the MQTT password (first line; keep it out of this file and "
        "off command lines).",
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle that signed the broker's certificate (`mqtts://` only); without "
        "it the system's CAs are trusted.",
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate for mutual TLS (`mqtts://` only)."
    )
    key_file: Path | None = Field(
        default=None, description="Private key of `cert_file` (`mqtts://` only)."
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive (seconds).")
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version. 5 resumes the device's session after an outage (commands "
        "queued by the broker arrive); 3.1.1 for brokers without v5.",
    )
    session_expiry_s: int = Field(
        default=3600,
        ge=0,
        le=7 * 86400,
        description="MQTT v5: how long the broker keeps this device's session (subscriptions "
        "and queued QoS 1 messages) while it is offline; 0 starts clean every time.",
    )

    @field_validator("url", mode="before")
    @classmethod
    def _no_credentials_in_url(cls, value: object) -> object:
        """A password in a URL ends up in shell history, process lists and logs: refuse it."""
        if isinstance(value, str) and "@" in urlsplit(value).netloc:
            raise ValueError(
                "the broker URL must not carry credentials (user:pass@): give the user name "
                "as `username` (--broker-username) and the password in a file, "
                "`password_file` (--broker-password-file)"
            )
        return value

    @model_validator(mode="after")
    def _tls_files_need_mqtts(self) -> BrokerSettings:
        """TLS files with ``mqtt://`` would suggest an encryption that is not there."""
        given = [
            name for name in ("ca_file", "cert_file", "key_file") if getattr(self, name) is not None
        ]
        if given and not self.tls:
            raise ValueError(
                f"{', '.join(given)} given but the URL {self.url} is plain MQTT: use mqtts://"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file is given without a username")
        return self

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS (the URL's scheme is ``mqtts``)."""
        return self.url.startswith("mqtts://")

    def read_password(self) -> str | None:
        """The password from ``password_file`` (its first line), or None without one.

        Raises:
            OSError: the file cannot be read (the caller names it in its error).
        """
        if self.password_file is None:
            return None
        lines = self.password_file.read_text().splitlines()
        return lines[0] if lines else ""
