"""The notify protocol against a real datagram socket, as systemd would listen."""

from __future__ import annotations

import os
import socket

import pytest

from edge_agent.agent import systemd


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_ready_and_status_arrive_as_one_datagram(notify_socket):
    assert systemd.notify("READY=1", "STATUS=serving 2 models")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=serving 2 models"


def test_abstract_namespace_socket(monkeypatch):
    name = f"edge-agent-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        assert systemd.notify("WATCHDOG=1")
        assert sock.recv(64) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_without_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_sec_for_this_process(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval_s() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert systemd.watchdog_interval_s() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert systemd.watchdog_interval_s() is None
