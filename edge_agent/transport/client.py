"""The MQTT client every edge-agent component uses: paho-mqtt 2.x behind a small surface.

Why a wrapper: paho's callbacks run on its network thread, where an exception from a handler
(a garbage payload, say) would be swallowed or kill the loop, and subscriptions of a clean
session vanish on reconnect. Here handlers are isolated, subscriptions are restored on every
reconnect, reconnection backs off on its own, ``subscribe`` returns once the broker has
acknowledged the subscription (its SUBACK), so a message published after it is delivered, and
connection failures become TransportError with a reason a person can act on, and a link that
goes silent without closing (a blackhole: no FIN, no RST) is given up within 1.5 keepalive
periods rather than paho's two (:class:`_SilenceWatch`). Topics come from
``edge_agent.transport.topics``; ``edge_agent.transport.memory`` is an in-memory stand-in with
the same surface, for unit tests of MQTT logic.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config.broker_schema import BrokerSettings
from edge_agent.errors import TransportError

log = logging.getLogger(__name__)


_REFUSED_IDENTITY = frozenset({134, 135})
"""CONNACK reasons (MQTT 5 numbering, which paho also uses for 3.1.1) that mean "who you are is
not accepted": bad user name or password, not authorised. Retrying will not change them."""


class _SilenceWatch:
    """Gives up a connection whose keepalive ping goes unanswered for a quarter period.

    paho sends PINGREQ once nothing arrived for ``keepalive`` seconds, and gives up only when
    the PINGRESP has not come a whole ``keepalive`` later: a silent link is noticed after two
    periods (paho/mqtt/client.py ``_check_keepalive`` and ``loop_misc``). Over a link that is
    up, the PINGRESP takes a round trip, and anything else arriving shows the link is alive
    too; so once a ping has been out for a quarter period with no byte received since, the
    link is dead, and the socket is shut down from here (thread-safe: paho's network thread
    then sees the connection end and reconnects as after any loss). The watch reads paho's
    ``_ping_t`` and ``_last_bytes_received`` (private, hence the guards).
    """

    def __init__(self, paho: mqtt.Client, keepalive_s: int, where: str) -> None:
        self._paho, self._keepalive_s, self._where = paho, keepalive_s, where
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.given_up = 0

    def start(self) -> None:
        if self._thread is None and self._keepalive_s > 0:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="mqtt-silence", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def _run(self) -> None:
        grace = self._keepalive_s / 4
        while not self._stop.wait(min(0.5, grace / 2)):
            if self.silent_for(time.monotonic()) >= grace:
                self._give_up()

    def silent_for(self, now: float) -> float:
        """Seconds a ping has been out with no byte received since (0.0 when none is out)."""
        ping_t = getattr(self._paho, "_ping_t", 0.0) or 0.0
        heard = getattr(self._paho, "_last_bytes_received", now) or now
        if ping_t <= 0:
            return 0.0
        return max(0.0, now - max(ping_t, heard))

    def _give_up(self) -> None:
        sock = self._paho.socket()
        if not isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
            return
        self.given_up += 1
        log.warning(
            "no answer from the broker at %s to a keepalive ping for %.1f s: the link is "
            "silent; reconnecting",
            self._where,
            self._keepalive_s / 4,
        )
        with contextlib.suppress(OSError):  # already gone: paho notices by itself
            sock.shutdown(socket.SHUT_RDWR)


def _no_delay(_client: Any, _userdata: Any, sock: Any) -> None:
    """Send small messages at once (``TCP_NODELAY``), as the broker's side does.

    Without it Nagle holds a chunk request back until the broker acknowledges the previous
    one, which a delayed acknowledgement may put off by 40 ms: a window's refill came 50-130
    ms late and a 16 Mbit/s link sat idle a sixth of the time (benchmarks/link.py).
    """
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True)
class Message:
    """A received message."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


Handler = Callable[[Message], None]


@dataclass
class _PendingSubscribe:
    """A SUBSCRIBE sent from a thread that waits for its SUBACK."""

    done: threading.Event = field(default_factory=threading.Event)
    refused: str = ""
    """Why the broker refused it (its reason code), or why no answer will come."""


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is: ``mqtt://host:1883`` or ``mqtts://host:8883``."""

    host: str
    port: int
    tls: bool

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        """Parse a broker URL; TransportError says what a valid one looks like."""
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
            raise TransportError(
                f"invalid broker URL {url!r}: use mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
            )
        tls = parsed.scheme == "mqtts"
        return cls(parsed.hostname, parsed.port or (8883 if tls else 1883), tls)


@dataclass(frozen=True)
class TlsFiles:
    """Files for TLS to the broker (per-device client certificates optional)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


class _RecordingSocket(ssl.SSLSocket):
    """An SSLSocket that leaves a failed handshake's error on its context.

    paho turns a failed handshake on its network thread into a bare "connect failed" callback;
    the error kept here lets the client say why (a wrong CA, an expired certificate).
    """

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except ssl.SSLError as exc:
            context = self.context
            if isinstance(context, _ClosingContext):
                context.last_failure = exc
            raise


class _ClosingContext(ssl.SSLContext):
    """An SSLContext that remembers the sockets it wrapped.

    A failed handshake's socket, which paho drops without closing, can then be closed instead
    of being left to the collector.
    """

    wrapped: list[ssl.SSLSocket]
    last_failure: ssl.SSLError | None = None
    sslsocket_class = _RecordingSocket

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        self.wrapped = [s for s in getattr(self, "wrapped", []) if s.fileno() != -1]
        self.wrapped.append(sock)
        return sock

    def close_failed(self) -> None:
        """Close every socket it wrapped that is still open (after a failed handshake)."""
        for sock in getattr(self, "wrapped", []):
            sock.close()
        self.wrapped = []


def tls_context(files: TlsFiles) -> ssl.SSLContext:
    """A client TLS context that always verifies the broker (certificate chain and host name).

    Raises:
        TransportError: a CA, certificate or key file cannot be read or is not what it claims.
    """
    ca = files.ca_file
    context = _ClosingContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, host name checked
    try:
        if ca is None:
            context.load_default_certs()
        else:
            context.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"cannot load the broker CA file {ca}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.cert_file is not None:
        try:
            key = str(files.key_file) if files.key_file else None
            context.load_cert_chain(str(files.cert_file), key)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(
                f"cannot load the client certificate {files.cert_file} "
                f"(key {files.key_file}): {exc}"
            ) from None
    return context


def apply_broker_settings(paho_client: mqtt.Client, settings: BrokerSettings) -> None:
    """Put the user, password and TLS of ``settings`` on a paho client.

    For the clients that drive paho themselves (the monitor's ingest, which acknowledges by
    hand); :meth:`MqttClient.from_settings` is the way for everyone else.

    Raises:
        TransportError: the password file or a TLS file cannot be read.
    """
    username, password = _credentials(settings)
    if username is not None:
        paho_client.username_pw_set(username, password)
    if settings.tls:
        paho_client.tls_set_context(tls_context(_tls_files(settings)))


def _credentials(settings: BrokerSettings) -> tuple[str | None, str | None]:
    try:
        return settings.username, settings.read_password()
    except OSError as exc:
        raise TransportError(
            f"cannot read the broker password file {settings.password_file}: {exc.strerror or exc}"
        ) from None


def _tls_files(settings: BrokerSettings) -> TlsFiles:
    return TlsFiles(settings.ca_file, settings.cert_file, settings.key_file)


def describe_tls_failure(where: str, ca_file: Path | None, exc: ssl.SSLError) -> str:
    """What a failed TLS handshake means for the person who configured the client."""
    trusted = f"the CA in {ca_file}" if ca_file else "the system's CAs (no CA file given)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the broker at {where} presented a certificate that does not verify against "
            f"{trusted}: {exc.verify_message}; give the CA that signed the broker's "
            "certificate (--broker-ca-file, broker.ca_file)"
        )
    return f"TLS handshake with the broker at {where} failed: {exc}"


def wait_acknowledged(info: mqtt.MQTTMessageInfo, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for paho to report a message published; whether it did.

    Published is the broker's PUBACK at QoS 1, and written to the socket at QoS 0.

    paho's ``wait_for_publish`` raises when the message was never handed to a socket: the
    connection went between a caller's ``connected`` check and its ``publish`` (paho drops its
    socket a moment before the loss callback clears ``connected``), or paho's queue was full.
    For a caller that only gives the broker a moment, that is the same answer as a timeout;
    raised, it aborted the agent's stop on a link that dropped just then (the rest of the
    stop, closing the client and the models, never ran).
    """
    try:
        info.wait_for_publish(timeout_s)
    except (RuntimeError, ValueError):
        return False
    return bool(info.is_published())


@dataclass(frozen=True)
class LastWill:
    """What the broker publishes for us if we vanish (the retained 'offline' status)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class MqttClient:
    """A connected MQTT client with resilient subscriptions. Thread-safe for publish/subscribe."""

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: TlsFiles | None = None,
        keepalive_s: int = 30,
        will: LastWill | None = None,
        clean_session: bool = True,
        max_inflight: int = 100,
        protocol: int = 4,
        session_expiry_s: int | None = None,
    ) -> None:
        """``protocol`` 4 is MQTT 3.1.1 (every broker), 5 is MQTT v5.

        With v5 and ``session_expiry_s``, the first connect starts clean and every reconnect
        resumes the session: the broker keeps subscriptions and queued QoS 1 messages (commands
        for a device) across an outage of up to that many seconds.
        """
        self.address = BrokerAddress.from_url(url)
        self.client_id = client_id
        self._ca_file = tls.ca_file if tls is not None else None
        self._keepalive_s = keepalive_s
        self._subscriptions: dict[str, tuple[int, Handler]] = {}
        self._lock = threading.Lock()
        # held while a SUBSCRIBE is sent and its waiter registered, and by on_subscribe
        # before it looks the waiter up: a fast SUBACK cannot overtake the registration
        self._suback_lock = threading.Lock()
        self._pending_subscribes: dict[int, _PendingSubscribe] = {}
        # the SUBSCRIBE that restores every subscription after a (re)connect: (mid, filters)
        self._restoring: tuple[int, frozenset[str]] | None = None
        self._connected = threading.Event()
        self._refused = threading.Event()  # credentials refused: waiting longer cannot help
        self._connection_listeners: list[Callable[[bool], None]] = []
        self._last_error = ""
        self._closing = False
        if protocol not in (4, 5):
            raise TransportError(f"MQTT protocol {protocol} is not supported: use 4 (3.1.1) or 5")
        self._v5 = protocol == 5
        self._session_expiry_s = session_expiry_s
        self._paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if self._v5 else clean_session,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
        )
        self._paho.max_inflight_messages_set(max_inflight)
        self._paho.max_queued_messages_set(0)  # unbounded in memory; durable queues are ours
        # jittered: after a broker restart a fleet must not reconnect in lockstep
        self._paho.reconnect_delay_set(
            min_delay=random.randint(1, 3), max_delay=random.randint(20, 40)
        )
        if username is not None:
            self._paho.username_pw_set(username, password)
        self._tls: ssl.SSLContext | None = None
        if self.address.tls or tls is not None:
            self._tls = tls_context(tls or TlsFiles())
            self._paho.tls_set_context(self._tls)
        if will is not None:
            self._paho.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._paho.on_socket_open = _no_delay
        self._paho.on_connect = self._on_connect
        self._paho.on_connect_fail = self._on_connect_fail
        self._reported_failure = ""
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_message = self._on_message
        self._paho.on_subscribe = self._on_subscribe
        self._silence = _SilenceWatch(self._paho, keepalive_s, self._where())

    @classmethod
    def from_settings(cls, settings: BrokerSettings, client_id: str, **options: Any) -> MqttClient:
        """A client that logs in as ``settings`` say (user, password file, TLS files).

        ``options`` are the constructor's keyword options (will, protocol, session expiry ...).

        Raises:
            TransportError: the password file or a TLS file cannot be read.
        """
        username, password = _credentials(settings)
        options.setdefault("keepalive_s", settings.keepalive_s)
        return cls(
            settings.url,
            client_id,
            username=username,
            password=password,
            tls=_tls_files(settings) if settings.tls else None,
            **options,
        )

    # -- connection ------------------------------------------------------------------------

    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect and start the network thread; TransportError if not connected in time.

        Subscriptions made before are in place when it returns (see ``connected``).

        After the first connection, paho reconnects by itself (1 s .. 30 s backoff).
        """
        try:
            self._connect_async()
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot reach the broker at {self._where()}: {exc}") from None
        try:
            # the first attempt here, not on the network thread, so that a certificate that
            # does not verify is an error that says so instead of a silent retry loop
            self._paho.reconnect()
        except ssl.SSLError as exc:
            if isinstance(self._tls, _ClosingContext):
                self._tls.close_failed()
            self._reset_sockets()
            raise TransportError(describe_tls_failure(self._where(), self._ca_file, exc)) from None
        except OSError as exc:
            self._last_error = str(exc)
            self._connect_async()  # not up yet: the network thread retries until the timeout
        self._paho.loop_start()
        self._silence.start()
        deadline = time.monotonic() + timeout_s
        while not self._connected.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            if self._refused.is_set() or time.monotonic() >= deadline:
                break
        if not self._connected.is_set():
            self._silence.stop()
            self._paho.loop_stop()
            reason = self._last_error or "no answer"
            if self._refused.is_set():
                raise TransportError(
                    f"the broker at {self._where()} {reason.removeprefix('broker ')}: check the "
                    "user name and password file (--broker-username, --broker-password-file; "
                    "broker.username, broker.password_file)"
                )
            raise TransportError(
                f"could not connect to the broker at {self._where()} within {timeout_s:.0f} s "
                f"({reason}); check that it runs and the URL, credentials and TLS files are right"
            )

    def start_in_background(self) -> None:
        """Start connecting without waiting (the agent must start even when the broker is down)."""
        self._connect_async()
        self._paho.loop_start()
        self._silence.start()

    def _connect_async(self) -> None:
        if not self._v5:
            self._paho.connect_async(self.address.host, self.address.port, self._keepalive_s)
            return
        if not self._session_expiry_s:
            self._paho.connect_async(
                self.address.host, self.address.port, self._keepalive_s, clean_start=True
            )
            return
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry_s
        self._paho.connect_async(
            self.address.host,
            self.address.port,
            self._keepalive_s,
            clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )

    @property
    def connected(self) -> bool:
        """Whether the client is connected right now, with its subscriptions acknowledged."""
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected (True) or the timeout passes (False)."""
        return self._connected.wait(timeout_s)

    def on_connection_change(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(True)`` on every (re)connect and ``listener(False)`` on every loss."""
        self._connection_listeners.append(listener)

    def close(self) -> None:
        """Disconnect cleanly (no last will) and stop the network thread."""
        self._closing = True
        self._silence.stop()
        self._paho.disconnect()
        self._paho.loop_stop()
        self._connected.clear()
        self._reset_sockets()

    def _reset_sockets(self) -> None:
        # paho leaves loop_start()'s wake-up socket pair to __del__, which a reference cycle
        # can delay past interpreter checks; release it now (private, hence the guard).
        reset = getattr(self._paho, "_reset_sockets", None)
        if reset is not None:
            reset()

    def __enter__(self) -> MqttClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- messages --------------------------------------------------------------------------

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        """Queue a message for the broker.

        ``.wait_for_publish()`` / ``.is_published()`` on the result tell when the broker
        acknowledged it (QoS 1).
        """
        return self._paho.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(
        self, topic_filter: str, handler: Handler, qos: int = 1, timeout_s: float = 10.0
    ) -> bool:
        """Deliver messages matching ``topic_filter`` to ``handler``, across reconnects.

        When connected, waits up to ``timeout_s`` for the broker's SUBACK and returns True
        once the broker granted the subscription: a message published from then on reaches
        ``handler`` (no sleeping "until it lands"). Returns False when it cannot say so now:
        not connected (the subscription is sent on connect, and ``connected`` turns true only
        once the broker has acknowledged every subscription), refused by the broker (logged),
        no answer in time or the connection lost meanwhile (logged; restored on reconnect),
        or called from the network thread itself (a handler or connection listener), which
        must not block on the answer it would have to read.

        A handler that raises is logged and the message dropped; the connection carries on.
        """
        self._paho.message_callback_add(topic_filter, self._dispatcher(handler))
        with self._lock:  # either we see the connection up or _go_online sees this filter
            self._subscriptions[topic_filter] = (qos, handler)
            online = self._connected.is_set()
        if not online:
            return False
        if threading.current_thread() is getattr(self._paho, "_thread", None):
            self._paho.subscribe(topic_filter, qos)
            return False
        with self._suback_lock:
            result, mid = self._paho.subscribe(topic_filter, qos)
            if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
                return False  # the connection just dropped: _on_connect sends it again
            pending = _PendingSubscribe()
            self._pending_subscribes[mid] = pending
        if not pending.done.wait(timeout_s):
            with self._suback_lock:
                self._pending_subscribes.pop(mid, None)
            log.warning(
                "no SUBACK for %s from %s within %.0f s; it is restored on reconnect",
                topic_filter,
                self._where(),
                timeout_s,
            )
            return False
        if pending.refused:
            log.warning("subscription to %s not granted: %s", topic_filter, pending.refused)
            return False
        return True

    def unsubscribe(self, topic_filter: str) -> None:
        """Stop delivering ``topic_filter``."""
        with self._lock:
            self._subscriptions.pop(topic_filter, None)
        self._paho.message_callback_remove(topic_filter)
        self._paho.unsubscribe(topic_filter)

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _dispatcher(self, handler: Handler) -> Callable[..., None]:
        def dispatch(_client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
            received = Message(
                message.topic, bytes(message.payload), message.qos, bool(message.retain)
            )
            try:
                handler(received)
            except Exception:  # a bad message must not take the connection down
                log.exception("handler for %s failed on a message; dropped it", message.topic)

        return dispatch

    def _on_connect(
        self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any
    ) -> None:
        if reason.is_failure:
            self._last_error = f"broker refused: {reason}"
            if reason.value in _REFUSED_IDENTITY:
                self._last_error += " (the user name, password or client certificate)"
                self._refused.set()
            log.warning("broker %s refused the connection: %s", self._where(), reason)
            return
        self._last_error = self._reported_failure = ""
        self._refused.clear()
        with self._lock:
            restore = {f: qos for f, (qos, _handler) in self._subscriptions.items()}
        if restore:
            # "connected" means subscribed again too: a caller that waits for the connection
            # may publish and expect the answer, so it is set when the SUBACK comes
            with self._suback_lock:
                result, mid = self._paho.subscribe(list(restore.items()))
                if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                    self._restoring = (mid, frozenset(restore))
                    return
        self._go_online(frozenset(restore))

    def _on_connect_fail(self, _client: Any, _userdata: Any) -> None:
        """A (re)connection attempt failed on the network thread: say why if TLS knows."""
        if not isinstance(self._tls, _ClosingContext) or self._tls.last_failure is None:
            return
        failure, self._tls.last_failure = self._tls.last_failure, None
        self._tls.close_failed()
        self._last_error = describe_tls_failure(self._where(), self._ca_file, failure)
        if self._last_error != self._reported_failure:  # once, not at every retry
            self._reported_failure = self._last_error
            log.error("%s", self._last_error)

    def _go_online(self, restored: frozenset[str]) -> None:
        """Mark the connection up once ``restored`` filters are back; send any added meanwhile."""
        with self._lock:  # subscribe() registers and reads the flag under the same lock
            late = [(f, qos) for f, (qos, _h) in self._subscriptions.items() if f not in restored]
            self._connected.set()
        if late:
            self._paho.subscribe(late)
        self._notify(True)

    def _on_subscribe(
        self, _client: Any, _userdata: Any, mid: int, reasons: list[Any], _properties: Any
    ) -> None:
        refused = ", ".join(str(r) for r in reasons if r.is_failure)
        with self._suback_lock:
            pending = self._pending_subscribes.pop(mid, None)
            restoring = self._restoring
            if restoring is not None and restoring[0] == mid:
                self._restoring = None
        if pending is None:  # a resubscription on (re)connect: nobody waits for it
            if refused:
                log.warning("broker %s refused a subscription: %s", self._where(), refused)
            if restoring is not None and restoring[0] == mid:
                self._go_online(restoring[1])
            return
        pending.refused = refused
        pending.done.set()

    def _on_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        with self._suback_lock:  # their SUBACKs will not come: stop waiting
            abandoned = list(self._pending_subscribes.values())
            self._pending_subscribes.clear()
            self._restoring = None
        for pending in abandoned:
            pending.refused = f"connection lost before the SUBACK ({reason})"
            pending.done.set()
        if not self._refused.is_set():  # keep the refusal: it is the reason that helps
            self._last_error = f"disconnected: {reason}"
        if was_connected:
            if not self._closing:
                log.warning("lost the broker at %s (%s); reconnecting", self._where(), reason)
            self._notify(False)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        log.debug("message on %s with no handler", message.topic)

    def _notify(self, connected: bool) -> None:
        for listener in list(self._connection_listeners):
            try:
                listener(connected)
            except Exception:
                log.exception("connection listener failed")

    def _where(self) -> str:
        scheme = "mqtts" if self.address.tls else "mqtt"
        return f"{scheme}://{self.address.host}:{self.address.port}"
