"""A real delivery setup for tests: a TUF repository, a registry server and devices on one broker.

Nothing here is mocked: the repository is signed with real ed25519 keys, the registry is the
real ``RegistryServer`` on a real Mosquitto, devices are real ``DeviceUpdater``s. What tests
inject is behaviour: a ``MisbehavingRegistry`` (a server subclass that mangles its answers)
and ``Rogue`` (another MQTT client publishing frames at a device).
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from edge_agent.config import FetchSettings
from edge_agent.convert.package import PackageRequest, build_package
from edge_agent.delivery.store import ModelStore
from edge_agent.delivery.update import UpdateLimits, UpdateManager
from edge_agent.fleet.registry import RegistryServer, RegistrySettings
from edge_agent.transport import topics
from edge_agent.transport.client import Message, MqttClient
from edge_agent.transport.topics import DeviceChannel
from edge_agent.trust.device.client import DeviceUpdater, provision
from edge_agent.trust.operator.publish import add_model
from edge_agent.trust.operator.repository import OperatorRepository, RoleKeys
from edge_agent.trust.protocol import ChunkResponse, decode_response
from edge_agent.trust.targets import ModelRelease

EDGE_AGENT = Path(sys.executable).parent / "edge-agent"

FAST = FetchSettings(
    chunk_bytes=2048,
    window=8,
    chunk_timeout_s=0.5,
    max_attempts=4,
    backoff_base_s=0.05,
    backoff_max_s=0.3,
    deadline_s=30,
    flush_every=4,
)


def make_package(
    model: Path, out_dir: Path, name: str, version: str, profile: Path | None = None
) -> Path:
    """A real package made by the converter's packaging code (with a drift profile if given)."""
    output = out_dir / f"{name}-{version}"
    build_package(
        PackageRequest(
            model=model, name=name, version=version, output=output, profile=profile, force=True
        )
    )
    return output


@dataclass
class Device:
    """One device: its trust state, store and MQTT client."""

    device_id: str
    root: Path
    client: MqttClient
    settings: FetchSettings
    store: ModelStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = ModelStore(self.root / "store")

    @property
    def metadata_dir(self) -> Path:
        return self.root / "metadata"

    @property
    def download_dir(self) -> Path:
        return self.root / "downloads"

    def updater(self, cancel: threading.Event | None = None) -> DeviceUpdater:
        return DeviceUpdater(
            self.metadata_dir,
            self.client,
            self.device_id,
            self.download_dir,
            self.settings,
            cancel=cancel,
        )

    def manager(self, **options: object) -> UpdateManager:
        return UpdateManager(
            self.store,
            lambda cancel: self.updater(cancel),
            lambda topic, payload: self.client.publish(topic, payload),
            self.device_id,
            limits=UpdateLimits(refresh_s=20, download_s=30),
            **options,
        )  # type: ignore[arg-type]

    def close(self) -> None:
        self.store.close()
        self.client.close()


class DeliveryEnv:
    """Repository + registry + devices for one test."""

    def __init__(
        self,
        tmp: Path,
        broker_url: str,
        role_keys: dict[str, RoleKeys] | None = None,
        settings: RegistrySettings | None = None,
        server_class: type[RegistryServer] = RegistryServer,
    ) -> None:
        self.tmp = tmp
        self.broker_url = broker_url
        self.keys_dir = tmp / "keys"
        self.repo = OperatorRepository.init(tmp / "repo", self.keys_dir, role_keys)
        self.root_json = tmp / "repo" / "metadata" / "1.root.json"
        self.registry_client = MqttClient(broker_url, "registry")
        self.registry_client.connect()
        self.server = server_class(
            tmp / "repo", self.registry_client, settings or RegistrySettings(notify_poll_s=0.2)
        )
        self.server.start()
        self.devices: list[Device] = []

    def publish(
        self,
        model: Path,
        name: str = "digits",
        version: str = "1.0.0",
        profile: Path | None = None,
    ) -> ModelRelease:
        package = make_package(model, self.tmp / "packages", name, version, profile)
        return add_model(self.repo, package)

    def device(self, device_id: str = "dev-1", settings: FetchSettings = FAST) -> Device:
        client = MqttClient(self.broker_url, device_id)
        client.connect()
        root = self.tmp / "devices" / device_id
        provision(root / "metadata", self.root_json)
        device = Device(device_id, root, client, settings)
        self.devices.append(device)
        return device

    def close(self) -> None:
        for device in self.devices:
            device.close()
        self.server.stop()
        self.registry_client.close()


def chunks_served(env: DeliveryEnv, device: str, chunk_bytes: int, prefix: str = "") -> int:
    """File bytes the registry sent ``device`` under ``prefix``, in chunks (rounded up).

    The registry counts bytes (frames vary in size with the link); these tests reason in the
    device's chunks.
    """
    return -(-env.server.served_bytes(device, prefix) // chunk_bytes)


def pull_command(env: DeliveryEnv, store_dir: Path, device_id: str, *options: str) -> list[str]:
    """``edge-agent models pull`` of every model into ``store_dir``, as a device would run it.

    ``store_dir`` is the agent's ``store_dir`` (paths under it: ``StoreLayout``).
    """
    return [
        str(EDGE_AGENT),
        "models",
        "pull",
        "--broker",
        env.broker_url,
        "--root",
        str(env.root_json),
        "--store-dir",
        str(store_dir),
        "--device-id",
        device_id,
        "--json",
        *options,
    ]


@contextmanager
def delivery_env(tmp: Path, broker_url: str, **options: object) -> Iterator[DeliveryEnv]:
    env = DeliveryEnv(tmp, broker_url, **options)  # type: ignore[arg-type]
    try:
        yield env
    finally:
        env.close()


def watch_rollout(client: MqttClient, device_id: str) -> queue.Queue[Message]:
    """Collect the device's rollout transitions (subscribe before the update runs)."""
    box: queue.Queue[Message] = queue.Queue()
    client.subscribe(topics.device_topic(device_id, DeviceChannel.ROLLOUT), box.put)
    return box


class MisbehavingRegistry(RegistryServer):
    """The real server, with ``mangle`` deciding what each answer becomes (or None: dropped).

    ``mangle`` may return several frames: duplicates, garbage, a stale answer before the real one.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.mangle: Callable[[str, ChunkResponse], list[bytes]] = lambda _device, response: [
            response.encode()
        ]

    def _publish_frame(self, device: str, frame: bytes | bytearray) -> None:
        decoded = decode_response(bytes(frame))
        assert decoded is not None, "the real server sent a frame that does not decode"
        response = replace(decoded, data=bytes(decoded.data), crc32=None)
        for mangled in self.mangle(device, response):
            super()._publish_frame(device, mangled)
