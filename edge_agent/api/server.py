"""The HTTP server of the local inference API, on 127.0.0.1:PORT or a Unix socket.

The standard library's threading HTTP server is enough here: requests come from processes on
the same device, one thread each, with keep-alive; a web framework would add megabytes and no
capability we use. Every failure of a request becomes a 4xx with ``{"error": message}`` (or a
503 when the model itself cannot run); a 500 means a bug, and is logged with its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socketserver
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from edge_agent import __version__
from edge_agent.api.budget import DecodeBudget
from edge_agent.api.openapi import openapi_spec
from edge_agent.api.protocol import (
    HEADER_LENGTH,
    ProtocolError,
    decode_request,
    encode_response,
    tensor_metadata,
)
from edge_agent.config import ApiSettings
from edge_agent.errors import EdgeAgentError, HttpError, InputError
from edge_agent.serving.metrics import ServingMetrics
from edge_agent.serving.served import ModelRegistry, ServedModel

log = logging.getLogger(__name__)

_BUDGETED_JSON_BYTES = 64 << 10  # smaller all-JSON bodies decode without the shared budget
_MODEL_PATH = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/ready|/infer)?$"
)
PLATFORMS = {"tflite": "tensorflow_lite", "onnx": "onnxruntime_onnx"}


class ApiServer:
    """Serves the models of a ModelRegistry over the Open Inference Protocol."""

    def __init__(
        self,
        models: ModelRegistry,
        metrics: ServingMetrics,
        *,
        ready: Callable[[], bool] = lambda: True,
        max_body_bytes: int | None = None,
        settings: ApiSettings | None = None,
    ) -> None:
        """Serve ``models``; ``settings`` bounds connections, idle time and bodies.

        ``max_body_bytes``, when given, overrides the settings' binary body limit.
        """
        self.models = models
        self.metrics = metrics
        self.ready = ready
        self.settings = settings or ApiSettings()
        self.max_body_bytes = max_body_bytes or self.settings.max_body_bytes
        self.max_json_body_bytes = min(self.settings.max_json_body_bytes, self.max_body_bytes)
        self.connections = threading.BoundedSemaphore(self.settings.max_connections)
        self.json_decoding = DecodeBudget(self.max_json_body_bytes, self.settings.idle_timeout_s)
        self.refused_connections = 0
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None
        self.address = ""

    def start(self, listen: str) -> str:
        """Listen on ``HOST:PORT`` (port 0 picks a free one) or ``unix:/path``; returns where."""
        handler = _make_handler(self, tcp=not listen.startswith("unix:"))
        handler.timeout = self.settings.idle_timeout_s  # idle and slow clients are cut off
        if listen.startswith("unix:"):
            path = Path(listen.removeprefix("unix:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.is_symlink():
                path.unlink()
            server: socketserver.BaseServer = _UnixHTTPServer(str(path), handler)
            server.api = self  # type: ignore[attr-defined]
            os.chmod(path, 0o660)
            self.address = f"unix:{path}"
        else:
            host, _, port = listen.rpartition(":")
            tcp = _TcpHTTPServer((host or "127.0.0.1", int(port)), handler)
            tcp.api = self
            server = tcp
            bound_host, bound_port = tcp.server_address[:2]
            self.address = f"{bound_host!s}:{bound_port}"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="api", daemon=True)
        self._thread.start()
        log.info("inference API listening on %s", self.address)
        return self.address

    def stop(self) -> None:
        """Stop accepting requests and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self.address.startswith("unix:"):
                Path(self.address.removeprefix("unix:")).unlink(missing_ok=True)
            self._server = None

    # -- the protocol ----------------------------------------------------------------------

    def handle(
        self, method: str, path: str, headers: Any, body: bytes, keep: list[Any] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        """Route one request; returns status, body and extra headers.

        ``keep`` collects what the request parsed, for the caller to free once the response
        is sent (freeing a big JSON document is part of no answer).
        """
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if method == "GET":
            if path == "/v2/health/live":
                return _json(200, {"live": True})
            if path == "/v2/health/ready":
                ready = self.ready() and len(self.models) > 0
                return _json(200 if ready else 503, {"ready": ready})
            if path == "/v2":
                return _json(
                    200,
                    {
                        "name": "edge-agent",
                        "version": __version__,
                        "extensions": ["binary_tensor_data", "model_repository"],
                    },
                )
            if path == "/metrics":
                return (
                    200,
                    self.metrics.exposition(),
                    {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
                )
            if path in ("/v2/openapi.json", "/openapi.json"):
                return _json(200, openapi_spec(self.models.names()))
        match = _MODEL_PATH.match(path)
        if match:
            served = self._model(match["name"], match["version"])
            action = match["action"]
            if method == "GET" and action is None:
                return _json(200, self._metadata(served))
            if method == "GET" and action == "/ready":
                return _json(200, {"name": served.name, "ready": True})
            if method == "POST" and action == "/infer":
                return self._infer(served, headers, body, keep)
            raise HttpError(405, f"{method} is not allowed on {path}")
        if method == "POST" and path == "/v2/repository/index":
            return _json(
                200,
                [
                    {"name": m.name, "version": m.active.version, "state": "READY", "reason": ""}
                    for m in self.models
                ],
            )
        raise HttpError(404, f"no such endpoint: {method} {path} (see /v2/openapi.json)")

    def _model(self, name: str, version: str | None) -> ServedModel:
        served = self.models.get(name)
        if served is None:
            raise HttpError(
                404,
                f"unknown model '{name}'; this agent serves: "
                f"{', '.join(self.models.names()) or 'nothing yet'}",
            )
        if version is not None and version != served.active.version:
            raise HttpError(
                404,
                f"model '{name}' version {version} is not served; version "
                f"{served.active.version} is",
            )
        return served

    @staticmethod
    def _metadata(served: ServedModel) -> dict[str, Any]:
        active = served.active
        runtime = getattr(active.backend, "runtime_format", "") or active.backend.format
        return {
            "name": served.name,
            "versions": [active.version],
            "platform": PLATFORMS.get(runtime, runtime),
            "inputs": [tensor_metadata(spec) for spec in active.inputs],
            "outputs": [tensor_metadata(spec) for spec in active.outputs],
        }

    def _infer(
        self, served: ServedModel, headers: Any, body: bytes, keep: list[Any] | None
    ) -> tuple[int, bytes, dict[str, str]]:
        header_length = headers.get(HEADER_LENGTH)
        try:
            length = int(header_length) if header_length is not None else None
        except ValueError:
            raise HttpError(400, f"{HEADER_LENGTH} must be an integer") from None
        try:
            if length is None and len(body) > _BUDGETED_JSON_BYTES:
                with self.json_decoding.hold(len(body)):
                    request = decode_request(body, length, keep)
            else:
                request = decode_request(body, length, keep)
        except ProtocolError as exc:
            raise HttpError(400, str(exc)) from None
        try:
            result = served.run(request.inputs)
        except InputError as exc:
            raise HttpError(400, str(exc)) from None
        except EdgeAgentError as exc:
            raise HttpError(503, f"model '{served.name}' failed: {exc}") from None
        order = [spec.name for spec in served.active.outputs]
        try:
            payload, json_length = encode_response(
                served.name, result.version, request, result.outputs, order or list(result.outputs)
            )
        except ProtocolError as exc:
            raise HttpError(400, str(exc)) from None
        if json_length is None:
            return 200, payload, {"Content-Type": "application/json"}
        return (
            200,
            payload,
            {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(json_length)},
        )


def _json(status: int, body: Any) -> tuple[int, bytes, dict[str, str]]:
    return status, orjson.dumps(body), {"Content-Type": "application/json"}


def _error_body(error: Exception) -> bytes:
    return orjson.dumps({"error": str(error)})


_BACKLOG = 128
"""listen(2) backlog: socketserver's 5 dropped the SYNs of clients connecting at once (each
retried a second later; measured as 0.7-1 s p99 with 16 clients in benchmarks/api.py)."""
_ONE_WRITE_BYTES = 64 << 10
"""Responses up to this size go out with their headers in one write (bigger: no extra copy)."""
_BUSY_BODY = b'{"error": "too many connections to the API; retry later"}\n'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n\r\n".encode()
    + _BUSY_BODY
)


_MAX_HEADER_LINE = 65536  # http.client's limits, which the standard parser applied
_MAX_HEADERS = 100


class _Headers(dict[str, str]):
    """Request headers by lower-case name; ``get`` is case-insensitive, first value wins.

    Stands in for the ``email.message.Message`` the standard library builds: its parser cost
    about 0.15 ms a request, a third of what HTTP added to a small JSON request.
    """

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


class _HeaderError(Exception):
    """A header block the server will not read.

    Over http.client's limits (431, as the stdlib answered), or ambiguous about where the body
    ends (400).
    """

    def __init__(self, message: str, status: HTTPStatus) -> None:
        super().__init__(message)
        self.status = status


def _read_headers(rfile: Any) -> _Headers:
    """The header block up to its blank line, with http.client's line and count limits."""
    headers = _Headers()
    last = ""
    count = 0
    while True:
        line = rfile.readline(_MAX_HEADER_LINE + 1)
        if len(line) > _MAX_HEADER_LINE:
            raise _HeaderError("Line too long", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        if line in (b"\r\n", b"\n", b""):
            return headers
        count += 1
        if count > _MAX_HEADERS:
            raise _HeaderError("Too many headers", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t"):  # obsolete line folding continues the previous value
            if last:
                headers[last] = f"{headers[last]} {text.strip()}"
            continue
        name, colon, value = text.partition(":")
        if not colon:
            continue  # not a header line; the email parser ignored it as a defect too
        key = name.strip().lower()
        if not dict.__contains__(headers, key):
            headers[key] = value.strip()
            last = key
        elif key == "content-length" and headers[key] != value.strip():
            # two lengths, two readings of where the body ends (request smuggling): refused
            raise _HeaderError("conflicting Content-Length headers", HTTPStatus.BAD_REQUEST)
        else:
            last = ""


class _QuietErrors:
    """Clients that hang up mid-request are normal; log them at debug, not as tracebacks.

    It also bounds the connections served at once: one over ``max_connections`` gets a 503
    with Retry-After and is closed without a thread of its own.
    """

    api: ApiServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s dropped", client_address, exc_info=True)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.api.connections.acquire(blocking=False):
            self.api.refused_connections += 1
            with contextlib.suppress(OSError):
                request.sendall(_BUSY)
            self.shutdown_request(request)  # type: ignore[attr-defined]
            return
        super().process_request(request, client_address)  # type: ignore[misc]

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self.api.connections.release()


class _TcpHTTPServer(_QuietErrors, ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = _BACKLOG


class _UnixHTTPServer(_QuietErrors, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = _BACKLOG


def _make_handler(api: ApiServer, tcp: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = tcp  # headers and body go out as two writes
        server_version = f"edge-agent/{__version__}"

        def parse_request(self) -> bool:
            """The standard library's request-line rules, with a header parser of our own.

            Kept in step with ``BaseHTTPRequestHandler.parse_request`` (Python 3.10-3.13):
            the same 400/505 answers for a bad request line, 431 for a header block over
            http.client's limits, keep-alive by version and ``Connection``, ``Expect:
            100-continue``.
            """
            self.command = None  # type: ignore[assignment]
            self.request_version = version = self.default_request_version
            self.close_connection = True
            raw: bytes = self.raw_requestline  # type: ignore[attr-defined]
            requestline = str(raw, "iso-8859-1").rstrip("\r\n")
            self.requestline = requestline
            words = requestline.split()
            if not words:
                return False
            if len(words) >= 3:
                version = words[-1]
                try:
                    if not version.startswith("HTTP/"):
                        raise ValueError
                    base_version_number = version.split("/", 1)[1]
                    parts = base_version_number.split(".")
                    if len(parts) != 2 or any(not p.isdigit() or len(p) > 10 for p in parts):
                        raise ValueError
                    version_number = int(parts[0]), int(parts[1])
                except (ValueError, IndexError):
                    self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request version ({version!r})")
                    return False
                if version_number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                    self.close_connection = False
                if version_number >= (2, 0):
                    self.send_error(
                        HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
                        f"Invalid HTTP version ({base_version_number})",
                    )
                    return False
                self.request_version = version
            if not 2 <= len(words) <= 3:
                self.send_error(HTTPStatus.BAD_REQUEST, f"Bad request syntax ({requestline!r})")
                return False
            command, path = words[:2]
            if len(words) == 2:
                self.close_connection = True
                if command != "GET":
                    self.send_error(
                        HTTPStatus.BAD_REQUEST, f"Bad HTTP/0.9 request type ({command!r})"
                    )
                    return False
            self.command, self.path = command, path
            if self.path.startswith("//"):
                self.path = "/" + self.path.lstrip("/")
            try:
                self.headers = _read_headers(self.rfile)  # type: ignore[assignment]
            except _HeaderError as exc:
                self.send_error(exc.status, str(exc))
                return False
            connection = self.headers.get("Connection", "").lower()
            if connection == "close":
                self.close_connection = True
            elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            expect = self.headers.get("Expect", "").lower()
            if (
                expect == "100-continue"
                and self.protocol_version >= "HTTP/1.1"
                and self.request_version >= "HTTP/1.1"
            ):
                return self.handle_expect_100()
            return True

        def do_GET(self) -> None:
            self._respond("GET", b"")

        def do_POST(self) -> None:
            try:
                body = self._read_body()
            except HttpError as exc:
                self._send(
                    exc.status,
                    _error_body(exc),
                    {"Content-Type": "application/json", "Connection": "close"},
                )
                self.close_connection = True
                return
            self._respond("POST", body)

        def do_PUT(self) -> None:
            self._method_not_allowed()

        def do_DELETE(self) -> None:
            self._method_not_allowed()

        def do_PATCH(self) -> None:
            self._method_not_allowed()

        def _method_not_allowed(self) -> None:
            self._read_body_quietly()
            self._send(
                405, b'{"error": "method not allowed"}', {"Content-Type": "application/json"}
            )

        def _read_body(self) -> bytes:
            raw = self.headers.get("Content-Length")
            coding = self.headers.get("Transfer-Encoding", "").lower()
            if raw is not None and coding not in ("", "identity"):
                # a proxy in front could read the body by the coding, we by the length
                raise HttpError(
                    400,
                    "send Content-Length or Transfer-Encoding, not both (chunked is not supported)",
                )
            if raw is None:
                if coding == "chunked":
                    raise HttpError(411, "chunked bodies are not supported; send Content-Length")
                return b""
            try:
                length = int(raw)
            except ValueError:
                raise HttpError(400, "Content-Length must be an integer") from None
            if length < 0:
                raise HttpError(400, "Content-Length must not be negative")
            if length > api.max_body_bytes:
                raise HttpError(
                    413,
                    f"request body of {length} bytes exceeds the limit of "
                    f"{api.max_body_bytes} bytes",
                )
            all_json = self.headers.get(HEADER_LENGTH) is None
            if all_json and length > api.max_json_body_bytes:
                raise HttpError(
                    413,
                    f"a JSON request body of {length} bytes exceeds the limit of "
                    f"{api.max_json_body_bytes} bytes; send large tensors with the binary "
                    f"tensor data extension ({HEADER_LENGTH})",
                )
            body = self.rfile.read(length)
            if len(body) < length:
                raise HttpError(400, f"the body ended after {len(body)} of {length} bytes")
            return body

        def _read_body_quietly(self) -> None:
            try:
                self._read_body()
            except HttpError:
                self.close_connection = True

        def _respond(self, method: str, body: bytes) -> None:
            keep: list[Any] = []  # freed after the response is out
            try:
                status, payload, headers = api.handle(method, self.path, self.headers, body, keep)
            except HttpError as exc:
                status, payload, headers = (
                    exc.status,
                    _error_body(exc),
                    {"Content-Type": "application/json"},
                )
            except Exception:
                log.exception("bug: unhandled error for %s %s", method, self.path)
                status, payload, headers = (
                    500,
                    b'{"error": "internal error (see the agent log)"}',
                    {"Content-Type": "application/json"},
                )
            self._send(status, payload, headers)
            keep.clear()

        def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            """Status line and headers built as one string, small bodies in the same write.

            What ``send_response``/``send_header`` wrote (Server, Date, the ``Connection``
            rules), without their per-line list appends and encodes.
            """
            self.log_request(status)
            reason = self.responses[status][0] if status in self.responses else ""
            lines = [
                f"{self.protocol_version} {status} {reason}\r\n"
                f"Server: {self.version_string()}\r\nDate: {self.date_time_string()}\r\n"
            ]
            for key, value in headers.items():
                lines.append(f"{key}: {value}\r\n")
                if key.lower() == "connection":
                    if value.lower() == "close":
                        self.close_connection = True
                    elif value.lower() == "keep-alive":
                        self.close_connection = False
            lines.append(f"Content-Length: {len(payload)}\r\n\r\n")
            head = "".join(lines).encode("latin-1", "strict")
            if len(payload) <= _ONE_WRITE_BYTES:  # one segment: the client wakes up once
                self.wfile.write(head + payload)
                return
            self.wfile.write(head)
            self.wfile.write(payload)

        def address_string(self) -> str:
            return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

        def log_message(self, format: str, *args: Any) -> None:
            if log.isEnabledFor(logging.DEBUG):  # formatting costs on every request
                log.debug("%s %s", self.address_string(), format % args)

    return Handler
