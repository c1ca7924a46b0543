"""The systemd notify protocol: READY, STATUS, STOPPING and WATCHDOG over $NOTIFY_SOCKET.

A few lines of the documented datagram protocol (sd_notify(3)) rather than a dependency. Every
function is a no-op when the agent does not run under systemd (no NOTIFY_SOCKET).
"""

from __future__ import annotations

import os
import socket


def _socket_address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    if address.startswith("@"):  # abstract namespace
        return "\0" + address[1:]
    return address


def notify(*fields: str) -> bool:
    """Send ``READY=1``-style fields to systemd; False when not under systemd or it failed."""
    address = _socket_address()
    if address is None:
        return False
    message = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError:
        return False
    return True


def watchdog_interval_s() -> float | None:
    """How often systemd expects WATCHDOG=1 (half of WatchdogSec), or None when it does not."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 1e6 / 2, 0.1)
    except ValueError:
        return None
