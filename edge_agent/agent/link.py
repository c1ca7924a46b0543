"""The agent's MQTT side: its client (identity, TLS, last will, session) and its commands.

Commands arrive on the device's `cmd` topic from anyone who may publish there, so they can ask
for things (a status, a reload of the local config, samples) and never install anything:
models only arrive through the signed registry. Parsing is pure, so every malformed payload is
unit-tested to be refused with a reason instead of raising on paho's thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from edge_agent.config import AgentConfig
from edge_agent.errors import WireError
from edge_agent.transport import topics
from edge_agent.transport.client import LastWill, MqttClient
from edge_agent.transport.topics import DeviceChannel
from edge_agent.wire.commands import COMMANDS, MAX_SAMPLES_PER_COMMAND, Command
from edge_agent.wire.status import Status

__all__ = [
    "COMMANDS",
    "MAX_SAMPLES_PER_COMMAND",
    "Command",
    "RefusalLog",
    "device_client",
    "parse_command",
]

log = logging.getLogger(__name__)


def parse_command(payload: bytes) -> Command | str:
    """The command in ``payload`` (the wire's :class:`Command`), or the reason it is refused."""
    try:
        return Command.decode(payload)
    except WireError as exc:
        if exc.reason == "not_json":
            return f"not JSON: {payload[:80]!r}"
        return str(exc).split(": ", 1)[-1]


class RefusalLog:
    """Logs refused commands: the first at once, then at most one line per ``every_s``.

    Whoever may publish on the device's ``cmd`` topic decides how many commands arrive; a
    warning for each would let them fill the device's log (and its disk) at the broker's
    rate. The line after a quiet spell says how many were refused in between.
    """

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self._next = float("-inf")
        self._held = 0

    def refused(self, reason: str) -> None:
        now = self.clock()
        if now < self._next:
            self._held += 1
            return
        more = f" (and {self._held} more refused since the last line)" if self._held else ""
        log.warning("command ignored: %s%s", reason, more)
        self._held = 0
        self._next = now + self.every_s


def device_client(config: AgentConfig) -> MqttClient:
    """The device's MQTT client: per-device credentials, TLS, the `offline` last will.

    The client id is the device id itself: the shipped broker binds it to the user name
    (``use_username_as_clientid``), so one device can never take over another's session.

    Raises:
        TransportError: the password file or a TLS file cannot be read.
    """
    broker = config.broker
    if broker is None:
        raise ValueError("the agent config has no broker")
    status_topic = topics.device_topic(config.device_id, DeviceChannel.STATUS)
    offline = Status.last_will(config.device_id).encode()
    return MqttClient.from_settings(
        broker,
        config.device_id,
        will=LastWill(status_topic, offline),
        protocol=5 if broker.protocol == "5" else 4,
        session_expiry_s=broker.session_expiry_s or None,
    )
