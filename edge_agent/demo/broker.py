"""A private MQTT broker for the demo (and the tests): Mosquitto when installed, else amqtt.

Mosquitto is what a site runs: the demo runs it with the shipped, secured config
(``secured_broker.py``); :class:`Mosquitto` here is a plain, anonymous one for tests and
benchmarks. amqtt (pure Python, the `demo` extra) keeps `edge-agent demo` working on a machine
where nothing can be installed system-wide, without the security (it cannot run the shipped
config). Both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from edge_agent.errors import TransportError

MONITOR_TUNING = """\
# Tuned for a monitor that ingests many devices (see deploy/mosquitto.conf for the reasoning):
# never drop QoS 1 messages queued for a slow subscriber.
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
message_size_limit 4194304
"""


class PrivateBroker(Protocol):
    """A running broker."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 5 s (nothing when it is not running)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def mosquitto_binary() -> str | None:
    """Path of the mosquitto binary (Debian puts it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto")):
        if candidate.exists():
            return str(candidate)
    return None


def wait_for_port(port: int, alive: Any, timeout_s: float, what: str) -> None:
    """Return once 127.0.0.1:``port`` accepts connections.

    Raises TransportError when ``alive()`` turns false (a broker that exits says so at once
    instead of timing out) or after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise TransportError(f"{what} exited while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TransportError(f"{what} did not accept connections on port {port} in {timeout_s} s")


class Mosquitto:
    """Mosquitto with a config of its own in ``workdir``."""

    kind = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, extra_config: str = "") -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise TransportError("mosquitto is not installed: apt-get install mosquitto")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.log_path = workdir / "mosquitto.log"
        config = workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence false\n{MONITOR_TUNING}{extra_config}"
        )
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            # A session of its own: a terminal's Ctrl-C goes to the whole foreground process
            # group, and a broker that died first left every client reconnecting while the
            # demo stopped in order. The owner stops it (``stop``), last.
            self.process = subprocess.Popen(
                [binary, "-c", str(config), "-v"], stdout=log, stderr=log, start_new_session=True
            )
        try:
            wait_for_port(self.port, lambda: self.process.poll() is None, 10, "mosquitto")
        except TransportError:
            self.stop()
            raise TransportError(
                f"mosquitto failed to start: {self.log_path.read_text()[-1000:]}"
            ) from None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        stop_process(self.process)


class EmbeddedBroker:
    """amqtt running on its own event-loop thread in this process."""

    kind = "amqtt (embedded)"

    def __init__(self, port: int | None = None) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise TransportError(
                "no MQTT broker: install Mosquitto (apt-get install "
                "mosquitto) or the embedded one (pip install "
                "'edge-agent[demo]')"
            ) from None
        self.host = "127.0.0.1"
        self.port = port or free_port()
        # amqtt logs a port probe as an error and its own shutdown as a traceback
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._loop = asyncio.new_event_loop()
        self._broker = Broker(config, loop=self._loop)
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._broker.start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not started.wait(15):
            raise TransportError("the embedded MQTT broker did not start")
        wait_for_port(self.port, self._thread.is_alive, 10, "the embedded broker")

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        """Shut the broker down and end its thread."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            future.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def wants_mosquitto(prefer: str) -> bool:
    """Whether ``prefer`` (``auto``, ``mosquitto`` or ``embedded``) means Mosquitto here."""
    return prefer == "mosquitto" or (prefer == "auto" and mosquitto_binary() is not None)
