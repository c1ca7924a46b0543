"""A site on the shipped broker configuration: every component with its own user, and the
attacks a device (or a stranger) could try, each refused.

The broker is Mosquitto with deploy/mosquitto.conf and deploy/mosquitto.acl, only paths and
ports rewritten (``tests.fixtures.secured_broker``), TLS certificates made at start-up. Absence
of a message is proven with a sentinel instead of waited out: a broker hands one publisher's
messages to a subscriber in order, so once a sentinel published after the forgery arrives, the
forgery is not coming. docs/security.md maps each attack here to its test.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import BrokerSettings
from edge_agent.errors import TransportError
from edge_agent.fleet.tls import make_authority
from edge_agent.transport import topics
from edge_agent.transport.client import Message, MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fakes.delivery_env import EDGE_AGENT, make_package
from tests.fixtures.mosquitto import free_port
from tests.fixtures.secured_broker import SecuredBroker, remove, start_secured_broker

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "models" / "digits"
USERS = ("registry", "monitor", "operator", "cam-1", "cam-2", "cam-3", "cam-4", "sim-0000")
REPORTS = (
    DeviceChannel.STATUS,
    DeviceChannel.TELEMETRY,
    DeviceChannel.DRIFT,
    DeviceChannel.SAMPLES,
    DeviceChannel.ROLLOUT,
)


@pytest.fixture(scope="module")
def site() -> Iterator[SecuredBroker]:
    broker = start_secured_broker()
    for user in USERS:
        broker.add_user(user)
    broker.start()
    yield broker
    remove(broker)


@pytest.fixture
def connect(site: SecuredBroker) -> Iterator:
    """``connect(user)``: a connected client logged in as ``user`` over TLS."""
    clients: list[MqttClient] = []

    def make(user: str, client_id: str | None = None) -> MqttClient:
        client = MqttClient.from_settings(site.settings(user), client_id or f"{user}-test")
        client.connect()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _receiver(client: MqttClient, topic_filter: str) -> queue.Queue[Message]:
    box: queue.Queue[Message] = queue.Queue()
    assert client.subscribe(topic_filter, box.put)
    return box


def _only(box: queue.Queue[Message], sentinel: bytes) -> list[Message]:
    """Everything that arrived up to and including the sentinel."""
    got = []
    while True:
        message = box.get(timeout=5)
        got.append(message)
        if message.payload == sentinel:
            return got


# -- the attacks ---------------------------------------------------------------------------


def test_refuses_an_anonymous_client(site: SecuredBroker):
    for url in (site.plain_url, site.tls_url):
        client = MqttClient.from_settings(
            site.settings(None).model_copy(update={"url": url, "ca_file": None})
            if url == site.plain_url
            else site.settings(None),
            "anonymous",
        )
        with pytest.raises(TransportError, match="refused"):
            client.connect(timeout_s=10)
        client.close()


def test_refuses_a_client_that_trusts_the_wrong_ca(
    site: SecuredBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """The broker's certificate is checked: a man in the middle with another CA is not trusted
    (and so a client pinned to the wrong CA cannot connect, with an error that says why)."""
    wrong = make_authority(tmp_path, "not-the-fleet-ca")
    client = MqttClient.from_settings(site.settings("cam-1", ca=wrong.cert), "cam-1")
    with pytest.raises(TransportError, match=r"does not verify against the CA in .*not-the-fleet"):
        client.connect(timeout_s=10)
    client.close()
    # the agent connects in the background (it must start while the broker is down): the
    # reason is logged once, not swallowed by paho's retry loop
    background = MqttClient.from_settings(site.settings("cam-1", ca=wrong.cert), "cam-1")
    with caplog.at_level(logging.ERROR, logger="edge_agent.transport.client"):
        background.start_in_background()
        deadline = time.monotonic() + 10
        while not any("does not verify" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
    assert not background.connected
    background.close()


def test_refuses_a_wrong_password(site: SecuredBroker, tmp_path: Path):
    guess = tmp_path / "guess.pw"
    guess.write_text("guess\n")
    settings = site.settings("cam-1").model_copy(update={"password_file": guess})
    client = MqttClient.from_settings(settings, "cam-1")
    with pytest.raises(TransportError, match="refused"):
        client.connect(timeout_s=10)
    client.close()


def test_a_device_cannot_publish_another_devices_status_telemetry_drift_samples_or_results(
    connect,
):
    monitor, cam1 = connect("monitor"), connect("cam-1")
    seen = _receiver(monitor, "ea/v1/cam-2/#")
    for channel in REPORTS:
        cam1.publish(topics.device_topic("cam-2", channel), b'{"forged": 1}')
    cam1.publish("ea/v1/cam-2/results/detections", b'{"forged": 1}')
    sentinel = connect("cam-2")
    sentinel.publish(topics.device_topic("cam-2", DeviceChannel.TELEMETRY), b"sentinel")
    assert [m.payload for m in _only(seen, b"sentinel")] == [b"sentinel"]


def test_a_device_cannot_read_another_devices_commands_or_chunk_answers(connect):
    cam1, operator, registry = connect("cam-1"), connect("operator"), connect("registry")
    stolen = queue.Queue()  # type: queue.Queue[Message]
    cam1.subscribe(topics.device_topic("cam-2", DeviceChannel.CMD), stolen.put)  # granted,
    cam1.subscribe(topics.registry_response("cam-2"), stolen.put)  # the ACL acts on delivery
    own = _receiver(cam1, topics.device_topic("cam-1", DeviceChannel.CMD))
    operator.publish(topics.device_topic("cam-2", DeviceChannel.CMD), b'{"cmd": "status"}')
    registry.publish(topics.registry_response("cam-2"), b"chunk of cam-2's download")
    operator.publish(topics.device_topic("cam-1", DeviceChannel.CMD), b"sentinel")
    registry.publish(topics.registry_response("cam-1"), b"sentinel")
    assert [m.payload for m in _only(own, b"sentinel")] == [b"sentinel"]
    own_answers = _receiver(cam1, topics.registry_response("cam-1"))
    registry.publish(topics.registry_response("cam-1"), b"second sentinel")
    assert own_answers.get(timeout=5).payload == b"second sentinel"
    assert stolen.empty()


def test_a_device_cannot_publish_the_registry_notification_or_chunk_answers(connect):
    cam2, cam1, registry = connect("cam-2"), connect("cam-1"), connect("registry")
    notified = _receiver(cam2, topics.registry_notify())
    answers = _receiver(cam2, topics.registry_response("cam-2"))
    cam1.publish(topics.registry_notify(), b'{"forged": "notify"}')
    cam1.publish(topics.registry_response("cam-2"), b"forged chunk")
    registry.publish(topics.registry_notify(), b"sentinel")
    registry.publish(topics.registry_response("cam-2"), b"sentinel")
    assert [m.payload for m in _only(notified, b"sentinel")] == [b"sentinel"]
    assert [m.payload for m in _only(answers, b"sentinel")] == [b"sentinel"]


def test_a_device_cannot_take_another_devices_client_id(site: SecuredBroker, connect):
    """cam-4 connects with cam-3's client id: the broker names the connection after its user,
    so cam-3 is not disconnected (it used to be, and the two flapped)."""
    victim = connect("cam-3", client_id="cam-3")
    losses: list[bool] = []
    victim.on_connection_change(losses.append)
    commands = _receiver(victim, topics.device_topic("cam-3", DeviceChannel.CMD))
    thief = connect("cam-4", client_id="cam-3")
    operator = connect("operator")
    operator.publish(topics.device_topic("cam-3", DeviceChannel.CMD), b"still yours")
    assert commands.get(timeout=5).payload == b"still yours"
    assert victim.connected and thief.connected and losses == []
    assert "as cam-4 (" in site.log() and "already connected" not in site.log()


def test_a_device_cannot_pull_models_as_another_device(site: SecuredBroker, tmp_path: Path):
    """cam-1's credentials with --device-id cam-2: its requests go to cam-2's topic, which the
    broker drops, and cam-2's answers never reach it; the same pull as itself succeeds."""
    from edge_agent.fleet.registry import RegistryServer, RegistrySettings
    from edge_agent.trust.operator.publish import add_model
    from edge_agent.trust.operator.repository import OperatorRepository

    repo = OperatorRepository.init(tmp_path / "repo", tmp_path / "keys")
    add_model(
        repo, make_package(DIGITS / "digits_fp32.tflite", tmp_path / "pkg", "digits", "1.0.0")
    )
    root_json = tmp_path / "repo" / "metadata" / "1.root.json"
    with MqttClient.from_settings(site.settings("registry"), "registry") as client:
        client.connect()
        server = RegistryServer(tmp_path / "repo", client, RegistrySettings(notify_poll_s=0.2))
        server.start()
        try:

            def pull(as_device: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    _edge_agent(
                        *("models", "pull", "--root", str(root_json), "--device-id", as_device),
                        *("--store-dir", str(tmp_path / as_device), "--json"),
                        *("--chunk-timeout", "0.5", "--timeout", "10", *site.options("cam-1")),
                    ),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )

            stolen = pull("cam-2")
            assert stolen.returncode != 0, stolen.stdout
            assert "could not fetch from the registry" in stolen.stderr, stolen.stderr
            assert not (tmp_path / "cam-2" / "models").exists() or not any(
                (tmp_path / "cam-2" / "models").rglob("*.tflite")
            )
            own = pull("cam-1")
            assert own.returncode == 0, own.stderr
        finally:
            server.stop()


def test_a_revoked_device_is_disconnected_and_refused(site: SecuredBroker, tmp_path: Path):
    """`fleet provision` makes a device that logs in with nothing but its agent.yaml;
    `fleet revoke` and a broker reload throw it out and keep it out."""
    from edge_agent.config import load_agent_config

    root = tmp_path / "root.json"
    root.write_text("{}")
    made = subprocess.run(
        _edge_agent(
            *("fleet", "provision", "cam-9", "--passwd", str(site.passwd), "--root", str(root)),
            *("--device-broker", site.tls_url, "--ca-file", str(site.authority.cert)),
            *(
                "--model",
                "digits",
                "--out",
                str(tmp_path),
                "--install-dir",
                str(tmp_path / "cam-9"),
            ),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    site.reload()
    broker = load_agent_config(tmp_path / "cam-9" / "agent.yaml").broker
    assert broker is not None
    device = MqttClient.from_settings(broker, "cam-9")
    deadline = time.monotonic() + 10
    while True:  # the reload is asynchronous: until it is done the user is unknown
        try:
            device.connect(timeout_s=5)
            break
        except TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    lost: list[bool] = []
    device.on_connection_change(lost.append)
    revoked = subprocess.run(
        _edge_agent("fleet", "revoke", "cam-9", "--passwd", str(site.passwd)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert revoked.returncode == 0, revoked.stderr
    site.reload()
    deadline = time.monotonic() + 10
    while device.connected or not lost:
        assert time.monotonic() < deadline, "a revoked device stayed connected after the reload"
        time.sleep(0.1)
    device.close()
    again = MqttClient.from_settings(broker, "cam-9")
    with pytest.raises(TransportError, match="refused"):
        again.connect(timeout_s=10)
    again.close()


def test_a_client_certificate_is_the_identity_when_the_broker_asks_for_one():
    """The other binding the deployment guide offers: `require_certificate` with
    `use_identity_as_username`; --broker-cert-file/--broker-key-file present the device's
    certificate, and its common name is the user (and so the client id and the ACL's %u)."""
    import tempfile

    from tests.fixtures.mosquitto import start_broker

    root = Path(tempfile.mkdtemp(prefix="ea-mtls-"))
    root.chmod(0o755)
    try:
        authority = make_authority(root, "fleet-ca")
        server_cert, server_key = authority.issue(root, "broker", ["127.0.0.1"])
        device_cert, device_key = authority.issue(root, "cam-5", ["cam-5"])
        for path in root.iterdir():
            path.chmod(0o644)
        port = free_port()
        broker = start_broker(
            root / "broker",
            extra_config=(
                f"listener {port} 127.0.0.1\ncafile {authority.cert}\n"
                f"certfile {server_cert}\nkeyfile {server_key}\nrequire_certificate true\n"
                "use_identity_as_username true\nuse_username_as_clientid true\n"
            ),
        )
        try:
            settings = BrokerSettings(
                url=f"mqtts://127.0.0.1:{port}",
                ca_file=authority.cert,
                cert_file=device_cert,
                key_file=device_key,
            )
            with MqttClient.from_settings(settings, "anything") as client:
                client.connect(timeout_s=10)
                assert client.connected
            assert "as cam-5 (" in broker.log()
            without = MqttClient.from_settings(
                settings.model_copy(update={"cert_file": None, "key_file": None}), "cam-5"
            )
            with pytest.raises(TransportError):
                without.connect(timeout_s=5)
            without.close()
        finally:
            broker.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- every component with its own user -------------------------------------------------------


def _edge_agent(*args: str) -> list[str]:
    return [str(EDGE_AGENT), *args]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_every_component_works_with_its_own_user(site: SecuredBroker, tmp_path: Path):
    """Registry, monitor, `models pull`, two agents and a simulated device, each logged in as
    itself over TLS, with nothing but the command-line options (the password only in a file)."""
    from edge_agent.trust.operator.publish import add_model
    from edge_agent.trust.operator.repository import OperatorRepository

    repo = OperatorRepository.init(tmp_path / "repo", tmp_path / "keys")
    add_model(
        repo, make_package(DIGITS / "digits_fp32.tflite", tmp_path / "pkg", "digits", "1.0.0")
    )
    root_json = tmp_path / "repo" / "metadata" / "1.root.json"
    http = f"127.0.0.1:{free_port()}"
    services = [
        subprocess.Popen(
            _edge_agent(
                *("registry", "serve", "--repo", str(tmp_path / "repo")),
                *site.options("registry"),
            ),
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            _edge_agent(
                *("monitor", "serve", "--db", f"sqlite:///{tmp_path}/monitor.db"),
                *("--http", http, *site.options("monitor")),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    agents: list[subprocess.Popen[bytes]] = []
    try:
        for device in ("cam-1", "cam-2"):
            agents.append(
                subprocess.Popen(
                    _edge_agent(
                        *("run", "--model", str(DIGITS / "digits_fp32.tflite")),
                        *("--device-id", device, "--api", f"127.0.0.1:{free_port()}"),
                        *("--store-dir", str(tmp_path / device), *site.options(device)),
                    ),
                    stderr=subprocess.DEVNULL,
                )
            )
        simulated = subprocess.Popen(
            _edge_agent(
                *("fleet", "simulate", "--root", str(root_json), "--devices", "1"),
                *("--duration", "60", "--json", *site.options("sim-0000")),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        agents.append(simulated)
        pulled = subprocess.run(
            _edge_agent(
                *("models", "pull", "--root", str(root_json), "--device-id", "cam-3"),
                *("--store-dir", str(tmp_path / "cam-3"), "--json", *site.options("cam-3")),
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert pulled.returncode == 0, pulled.stderr
        assert json.loads(pulled.stdout)[0]["state"] == "active"
        secrets = [site.passwords[u].read_text().strip() for u in USERS]
        assert not any(s in pulled.stdout + pulled.stderr + site.log() for s in secrets)
        deadline = time.monotonic() + 120  # six processes start on two shared cores
        while True:
            try:
                fleet = _get(f"http://{http}/api/fleet")["devices"]
                received = _get(f"http://{http}/api/stats")["received"]
            except OSError:
                fleet, received = [], {}
            online = {d["device_id"] for d in fleet if d["online"]}
            # the agents' statuses, and the pull's rollout transitions (cam-3 reports as itself)
            if {"cam-1", "cam-2", "sim-0000"} <= online and received.get("rollout", 0) >= 1:
                break
            assert time.monotonic() < deadline, (fleet, received, site.log()[-3000:])
            time.sleep(0.5)
        for service in services + agents:
            assert service.poll() is None, service.args
        log = site.log()
        for user in ("registry", "monitor", "cam-1", "cam-2", "cam-3", "sim-0000"):
            assert f"as {user} (" in log, user  # each connection named after its own user
    finally:
        for process in agents + services:
            process.terminate()
        for process in agents + services:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_fleet_simulate_logs_each_device_in_as_itself(site: SecuredBroker, connect, tmp_path: Path):
    """`fleet simulate --device-credentials DIR`: every simulated device connects with its own
    user and password file (DIR/DEVICE_ID.pw) and publishes its status under the shipped ACL,
    which lets a user write only its own device's topics."""
    from edge_agent.trust.operator.repository import OperatorRepository

    ids = [f"persim-{i:04d}" for i in range(3)]
    for device in ids:
        site.add_user(device)
    site.reload()
    OperatorRepository.init(tmp_path / "repo", tmp_path / "keys")
    root_json = tmp_path / "repo" / "metadata" / "1.root.json"
    # no registry runs here: clear a notification an earlier test's registry left retained (the
    # devices would wait for a refresh nobody answers before they stop)
    connect("registry").publish(topics.registry_notify(), b"", qos=1, retain=True).wait_for_publish(
        5
    )
    statuses = _receiver(connect("monitor"), topics.all_devices(DeviceChannel.STATUS))
    run = subprocess.run(
        _edge_agent(
            *("fleet", "simulate", "--root", str(root_json), "--devices", str(len(ids))),
            *("--prefix", "persim", "--duration", "3", "--json"),
            *("--broker", site.tls_url, "--broker-ca-file", str(site.authority.cert)),
            *("--device-credentials", str(site.clients_dir)),
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout)["connections"] == len(ids)
    seen: set[str] = set()
    deadline = time.monotonic() + 10
    while not set(ids) <= seen and time.monotonic() < deadline:
        try:
            message = statuses.get(timeout=1)
        except queue.Empty:
            continue
        seen.add(json.loads(message.payload)["device_id"])
    assert set(ids) <= seen  # each status got past the ACL, so each was sent by its own user
    log = site.log()
    for device in ids:
        assert f"as {device} (" in log, device  # the connection is named after its user
