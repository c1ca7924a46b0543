"""The API's own request-line and header parsing keeps the standard library's answers.

The server parses headers without ``email.parser`` (a third of HTTP's cost on a JSON request),
so the rules the standard handler applied are pinned here over a real socket.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from edge_agent.api import ApiServer
from edge_agent.api.server import _Headers
from edge_agent.config import ApiSettings
from edge_agent.serving import ModelRegistry
from edge_agent.serving.metrics import ServingMetrics


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    api = ApiServer(ModelRegistry(), ServingMetrics(), settings=ApiSettings(idle_timeout_s=5))
    host, port = api.start("127.0.0.1:0").rsplit(":", 1)
    yield host, int(port)
    api.stop()


def exchange(address: tuple[str, int], raw: bytes) -> bytes:
    """Send ``raw``, return everything the server writes until it closes or goes quiet."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(raw)
        received = b""
        sock.settimeout(0.5)
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return received


def status_of(response: bytes) -> int:
    """The status, also from the stdlib's bare HTML answer to a request it read as HTTP/0.9."""
    if response.startswith(b"HTTP/"):
        return int(response.split(b" ", 2)[1])
    return int(response.split(b"Error code: ", 1)[1][:3])


def test_headers_are_case_insensitive_first_value_wins_and_folded_lines_continue() -> None:
    headers = _Headers({"content-length": "3", "x-a": "one two"})
    assert headers.get("Content-Length") == "3"
    assert headers["CONTENT-LENGTH"] == "3"
    assert "Content-Length" in headers
    assert headers.get("missing", "d") == "d"


def test_a_folded_duplicate_and_odd_header_block_parses_like_the_email_parser(
    address: tuple[str, int],
) -> None:
    body = b'{"inputs": []}'
    response = exchange(
        address,
        b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n"
        b"content-LENGTH: " + str(len(body)).encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"  # repeated, equal: one reading
        b"not a header line\r\nConnection: close\r\n\r\n" + body,
    )
    assert status_of(response) == 200
    assert b"Connection: close" not in response  # only error answers announce it


def test_keep_alive_serves_two_requests_on_one_connection(address: tuple[str, int]) -> None:
    request = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    response = exchange(address, request + request)
    assert response.count(b"HTTP/1.1 200 OK") == 2
    assert response.count(b'{"live":true}') == 2
    assert b"Server: edge-agent/" in response and b"Date: " in response


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /v2/health/live HTTP/2.0\r\n\r\n", 505),
        (b"GET /v2/health/live HTTP/1.x\r\n\r\n", 400),
        (b"GET /v2/health/live FTP/1.1\r\n\r\n", 400),
        (b"GET a b HTTP/1.1\r\n\r\n", 400),
        (b"POST /v2/health/live\r\n\r\n", 400),
        (b"GET /v2/health/live HTTP/1.1\r\nX: " + b"y" * 70000 + b"\r\n\r\n", 431),
        (
            b"GET /v2/health/live HTTP/1.1\r\n"
            + b"".join(b"X-%d: y\r\n" % i for i in range(101))
            + b"\r\n",
            431,
        ),
    ],
)
def test_bad_request_lines_and_header_blocks_get_the_standard_answers(
    address: tuple[str, int], raw: bytes, status: int
) -> None:
    assert status_of(exchange(address, raw)) == status


def test_expect_100_continue_is_answered_before_the_body(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(
            b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"{}")
        assert sock.recv(1000).startswith(b"HTTP/1.1 200 OK\r\n")


def test_connection_close_from_the_client_closes_after_the_answer(
    address: tuple[str, int],
) -> None:
    request = b"GET /v2/health/live HTTP/1.1\r\nConnection: close\r\n\r\n"
    response = exchange(address, request + request)
    assert response.count(b"HTTP/1.1 200 OK") == 1


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: 2\r\nContent-Length: 40\r\n",  # two lengths
        b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",  # a length and a coding
    ],
)
def test_a_body_whose_end_is_ambiguous_is_refused_with_400(
    address: tuple[str, int], headers: bytes
) -> None:
    """Request smuggling: where a proxy and the server could read the body's end differently,
    the request is refused instead of read by one of the two headers."""
    raw = b"POST /v2/models/none/infer HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n{}"
    assert status_of(exchange(address, raw)) == 400
    same = b"Content-Length: 2\r\nContent-Length: 2\r\n"  # repeated but equal: one reading
    raw = b"POST /v2/models/none/infer HTTP/1.1\r\nHost: x\r\n" + same + b"\r\n{}"
    assert status_of(exchange(address, raw)) == 404
