"""Sample upload over a real Mosquitto: complete, verified, no duplicates, across an outage."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from edge_agent.capture.protocol import Reassembler, ReceivedSample
from edge_agent.capture.store import Sample, SampleStore, decode_payload
from edge_agent.capture.uploader import SampleUploader
from edge_agent.config import UploadSettings
from edge_agent.telemetry.sensors import PowerSupply
from edge_agent.transport import topics
from edge_agent.transport.client import Message, MqttClient
from edge_agent.transport.topics import DeviceChannel
from tests.fixtures.mosquitto import Broker, start_broker
from tests.fixtures.wait import wait_for


@pytest.fixture
def persistent_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker that keeps sessions across a restart (as a production broker does).

    ``user root``: Mosquitto started as root drops to its own user, which cannot write into
    pytest's 0700 temporary directory; the session then never survived the restart, and the
    test passed only when the monitor happened to reconnect before the next chunk.
    """
    workdir = tmp_path_factory.mktemp("persistent-mosquitto")
    config = (
        f"persistence true\npersistence_location {workdir}/\nautosave_interval 1\nuser root\n"
        "max_inflight_messages 1\n"  # what the broker may redeliver to the monitor on restart
    )
    broker = start_broker(workdir, extra_config=config)
    broker.extra_config = config  # type: ignore[attr-defined]
    yield broker
    broker.stop()


def restart(broker: Broker, down_s: float) -> None:
    broker.stop()
    time.sleep(down_s)
    fresh = start_broker(broker.log_path.parent, port=broker.port, extra_config=broker.extra_config)  # type: ignore[attr-defined]
    broker.process = fresh.process


SENTINEL = b"sentinel: not a chunk"


class Monitor:
    """The receiving side: a persistent session and the reassembler."""

    def __init__(self, url: str) -> None:
        self.reassembler = Reassembler()
        self.samples: list[ReceivedSample] = []
        self.messages = 0
        self.lock = threading.Lock()
        self.client = MqttClient(url, "monitor", clean_session=False)
        self.client.connect()
        self.client.subscribe(topics.all_devices(DeviceChannel.SAMPLES), self.on_message)

    def on_message(self, message: Message) -> None:
        with self.lock:
            self.messages += 1
            if message.payload == SENTINEL:
                return
            done = self.reassembler.add(message.payload)
            if done is not None:
                self.samples.append(done)


def fill(store: SampleStore, count: int) -> list[str]:
    rng = np.random.default_rng(5)
    return [
        store.add(
            Sample(
                "digits32",
                "1",
                "cpu",
                0.001,
                "random",
                {"input": rng.random((1, 32, 32, 3)).astype(np.float32)},
                {"p": rng.random((1, 10)).astype(np.float32)},
            )
        )
        for _ in range(count)
    ]


def test_upload_completes_without_duplicates_across_a_broker_restart(persistent_broker, tmp_path):
    settings = UploadSettings(chunk_bytes=4096, inflight_chunks=2, max_bytes_per_s=60_000)
    with SampleStore(tmp_path / "samples") as store:
        ids = fill(store, 10)
        total = store.stats()["bytes"]
        monitor = Monitor(persistent_broker.url)
        device = MqttClient(persistent_broker.url, "cam-3")
        device.connect()
        uploader = SampleUploader(store, device, "cam-3", settings, poll_s=0.1, ack_timeout_s=2.0)
        try:
            uploader.start()  # the monitor's subscription is acknowledged: nothing to wait for
            wait_for(lambda: uploader.bytes_sent > total * 0.3, 20, "30 % uploaded")
            # mid-upload, and down longer than the uploader waits for an acknowledgement, so
            # the outage is always noticed (at 0.5 s paho's own resend could hide it)
            restart(persistent_broker, down_s=2.5)
            wait_for(
                lambda: not store.pending_upload(), 60, lambda: f"all sent; {uploader.stats()}"
            )
            wait_for(lambda: len(monitor.samples) == len(ids), 20, "every sample at the monitor")
        finally:
            uploader.stop()
        with monitor.lock:
            received = {s.id: s for s in monitor.samples}
        assert sorted(received) == sorted(ids)  # every sample, each completed once
        for sample_id, sample in received.items():
            assert sample.payload == store.payload_bytes(sample_id)  # sha256-checked, whole
            inputs, _ = decode_payload(sample.payload)
            assert inputs["input"].shape == (1, 32, 32, 3)
            assert sample.meta["model"] == "digits32" and sample.meta["format"] == "npz"
        assert uploader.retries >= 1  # the outage was noticed and resumed from
        # At least once on the wire, so a chunk in flight at the outage may come twice, but
        # no acknowledged chunk is ever resent: far fewer repeats than chunks.
        assert monitor.reassembler.duplicates <= settings.inflight_chunks * 2

        # A restarted agent finds nothing left to send: uploaded samples never go again.
        before = monitor.messages
        again = SampleUploader(store, device, "cam-3", settings)
        assert again.upload_pending() == 0
        # Absence, proven: a sentinel the device sends after it arrives after anything sent
        # before it (one publisher, one subscriber: in order), so only the sentinel may count.
        device.publish(topics.device_topic("cam-3", DeviceChannel.SAMPLES), SENTINEL)
        wait_for(lambda: monitor.messages > before, 10, "the sentinel")
        assert monitor.messages == before + 1
        device.close()
        monitor.client.close()


def test_uploads_wait_for_mains_power_and_resume_after_a_partial_sample(mosquitto, tmp_path):
    on_battery = [PowerSupply("BAT0", "Battery", "Discharging", None, 50.0, None, None, None)]
    supplies: list[PowerSupply] = list(on_battery)
    settings = UploadSettings(chunk_bytes=2048, only_on_mains=True)
    with SampleStore(tmp_path / "samples") as store, MqttClient(mosquitto.url, "cam-4") as device:
        device.connect()
        (sample_id,) = fill(store, 1)
        store.mark_progress(sample_id, 4096)  # a previous run got two chunks acknowledged
        monitor = Monitor(mosquitto.url)
        offsets: list[int] = []
        monitor.client.subscribe(
            topics.device_topic("cam-4", DeviceChannel.SAMPLES),
            lambda m: offsets.append(int(m.payload.split(b'"offset":')[1].split(b",")[0])),
        )
        uploader = SampleUploader(
            store, device, "cam-4", settings, power_supplies=lambda: supplies, poll_s=0.05
        )
        uploader.start()
        try:
            wait_for(lambda: "battery" in uploader.waiting_for, 5, "the battery decision")
            time.sleep(0.2)  # several more polls (0.05 s) on battery must stay silent too
            assert offsets == [] and store.pending_upload()
            supplies.clear()  # back on mains
            wait_for(lambda: not store.pending_upload(), 10, "the upload on mains")
        finally:
            uploader.stop()
            monitor.client.close()
        assert offsets and min(offsets) == 4096  # resumed, not restarted
