"""The agent's MQTT side: its client (identity, TLS, last will, session) and its commands.

Commands arrive on the device's `cmd` topic from anyone who may publish there, so they can ask
for things (a status, a reload of the local config, samples) and never install anything:
models only arrive through the signed registry. Parsing is pure, so every malformed payload is
unit-tested to be refused with a reason instead of raising on paho's thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edge_agent.config import AgentConfig
from edge_agent.transport import topics
from edge_agent.transport.client import LastWill, MqttClient, TlsFiles
from edge_agent.transport.topics import DeviceChannel

COMMANDS = ("status", "reload", "sample-now")
MAX_SAMPLES_PER_COMMAND = 1000


@dataclass(frozen=True)
class Command:
    """A command that parsed; ``count`` and ``model`` only matter for ``sample-now``."""

    name: str
    count: int = 1
    model: str | None = None


def parse_command(payload: bytes) -> Command | str:
    """The command in ``payload``, or the reason it is refused."""
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return f"not JSON: {payload[:80]!r}"
    if not isinstance(document, dict):
        return "not a JSON object"
    name = document.get("command")
    if name not in COMMANDS:
        return f"unknown command {name!r} (known: {', '.join(COMMANDS)})"
    try:
        count = int(document.get("count", 1))
    except (TypeError, ValueError):
        return f"count {document.get('count')!r} is not a number"
    model = document.get("model")
    return Command(
        name, max(1, min(count, MAX_SAMPLES_PER_COMMAND)), model if isinstance(model, str) else None
    )


def device_client(config: AgentConfig) -> MqttClient:
    """The device's MQTT client: per-device credentials, TLS, the `offline` last will."""
    broker = config.broker
    if broker is None:
        raise ValueError("the agent config has no broker")
    password = broker.password_file.read_text().strip() if broker.password_file else None
    status_topic = topics.device_topic(config.device_id, DeviceChannel.STATUS)
    offline = json.dumps({"device_id": config.device_id, "state": "offline"}).encode()
    tls = None
    if broker.ca_file or broker.cert_file:
        tls = TlsFiles(broker.ca_file, broker.cert_file, broker.key_file)
    return MqttClient(
        broker.url,
        f"edge-agent-{config.device_id}",
        username=broker.username,
        password=password,
        tls=tls,
        keepalive_s=broker.keepalive_s,
        will=LastWill(status_topic, offline),
        protocol=5 if broker.protocol == "5" else 4,
        session_expiry_s=broker.session_expiry_s or None,
    )
