"""When the MQTT client gives up a silent link: a keepalive ping out a quarter period, unheard.

paho alone waits a whole period for the PINGRESP (two periods of silence in all); the rule
here is read from paho's own bookkeeping (``_ping_t``, ``_last_bytes_received``), so it is
tested on that bookkeeping: a namespace standing in for the paho client's two fields.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from edge_agent.transport.client import _SilenceWatch


def watch(ping_t: float, heard: float) -> _SilenceWatch:
    paho: Any = SimpleNamespace(_ping_t=ping_t, _last_bytes_received=heard, socket=lambda: None)
    return _SilenceWatch(paho, keepalive_s=8, where="mqtt://test")


def test_no_ping_out_is_never_silence():
    assert watch(ping_t=0.0, heard=0.0).silent_for(now=100.0) == 0.0


def test_a_ping_unanswered_with_nothing_heard_since_counts_as_silence():
    assert watch(ping_t=10.0, heard=9.0).silent_for(now=12.5) == 2.5


def test_bytes_heard_after_the_ping_show_the_link_is_alive():
    """A slow link whose PINGRESP queues behind a download is not given up."""
    assert watch(ping_t=10.0, heard=12.0).silent_for(now=12.5) == 0.5
