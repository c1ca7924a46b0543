"""The shipped broker files: deploy/mosquitto.conf parses in Mosquitto, and deploy/mosquitto.acl
confines each device to its own topics while the monitor reads everyone's."""

from __future__ import annotations

import queue
import shutil
import subprocess
import tempfile
from pathlib import Path

from edge_agent.transport import topics
from edge_agent.transport.client import Message, MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fixtures.mosquitto import mosquitto_binary, start_broker

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TUNED = (
    "max_inflight_messages",
    "max_queued_messages",
    "max_queued_bytes",
    "message_size_limit",
    "max_keepalive",
    "queue_qos0_messages",
)


def tuned_lines() -> str:
    lines = (DEPLOY / "mosquitto.conf").read_text().splitlines()
    return "\n".join(line for line in lines if line.split(" ")[0] in TUNED) + "\n"


def password_file(tmp: Path, users: list[str]) -> Path:
    """Mosquitto drops root for the ``mosquitto`` user: the file must be readable by it."""
    tmp.mkdir(mode=0o755, exist_ok=True)
    tmp.chmod(0o755)
    path = tmp / "passwd"
    path.touch()
    for user in users:
        subprocess.run(
            ["mosquitto_passwd", "-b", str(path), user, f"{user}-pw"],
            check=True,
            capture_output=True,
        )
    path.chmod(0o644)
    return path


def test_tuned_settings_are_accepted_by_mosquitto(tmp_path: Path) -> None:
    assert mosquitto_binary() is not None
    broker = start_broker(tmp_path / "b", extra_config=tuned_lines())
    try:
        assert broker.process.poll() is None
        assert "max_inflight_messages 1000" in tuned_lines()
    finally:
        broker.stop()


def test_device_cannot_publish_as_another_device_or_read_its_commands(tmp_path: Path) -> None:
    """The spoofing attack: cam-1 forges cam-2's status and reads cam-2's commands."""
    shared = Path(tempfile.mkdtemp(prefix="ea-acl-"))
    passwd = password_file(shared, ["cam-1", "cam-2", "monitor", "operator"])
    config = (
        f"allow_anonymous false\npassword_file {passwd}\nacl_file {DEPLOY / 'mosquitto.acl'}\n"
    ) + tuned_lines()
    broker = start_broker(tmp_path / "b", extra_config=config)
    clients: list[MqttClient] = []
    try:

        def connect(user: str) -> MqttClient:
            client = MqttClient(broker.url, f"{user}-client", username=user, password=f"{user}-pw")
            client.connect()
            clients.append(client)
            return client

        monitor, cam1, cam2 = connect("monitor"), connect("cam-1"), connect("cam-2")
        operator = connect("operator")
        delivered: queue.Queue[Message] = queue.Queue()
        assert cam2.subscribe(topics.device_topic("cam-2", DeviceChannel.CMD), delivered.put)
        seen: queue.Queue[Message] = queue.Queue()
        assert monitor.subscribe(topics.all_devices(DeviceChannel.STATUS), seen.put)
        stolen: queue.Queue[Message] = queue.Queue()
        cam1.subscribe(topics.device_topic("cam-2", DeviceChannel.CMD), stolen.put)  # granted,
        # but the ACL is checked on delivery; cam-1's own commands are the sentinel's way in
        own_commands: queue.Queue[Message] = queue.Queue()
        assert cam1.subscribe(topics.device_topic("cam-1", DeviceChannel.CMD), own_commands.put)
        cam1.publish(topics.device_topic("cam-2", DeviceChannel.STATUS), b'{"forged": 1}')
        cam1.publish(topics.device_topic("cam-1", DeviceChannel.STATUS), b'{"own": 1}')
        operator.publish(topics.device_topic("cam-2", DeviceChannel.CMD), b"refresh")
        assert delivered.get(timeout=5).payload == b"refresh"  # the rightful reader gets it
        got = seen.get(timeout=5)
        assert got.topic == "ea/v1/cam-1/status" and got.payload == b'{"own": 1}'
        # Absence, proven instead of waited out: a broker hands one publisher's messages to a
        # subscriber in order, so once a sentinel sent after them arrives, nothing else will.
        cam1.publish(topics.device_topic("cam-1", DeviceChannel.STATUS), b'{"sentinel": 1}')
        assert seen.get(timeout=5).payload == b'{"sentinel": 1}'  # nothing before it
        assert seen.empty()
        operator.publish(topics.device_topic("cam-1", DeviceChannel.CMD), b"sentinel")
        assert own_commands.get(timeout=5).payload == b"sentinel"
        assert stolen.empty()
    finally:
        for client in clients:
            client.close()
        broker.stop()
        shutil.rmtree(shared, ignore_errors=True)
