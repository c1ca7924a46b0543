"""What the wire contract costs: decoding each channel's message in the monitor, encoding on
the device.

Decode: ``parse_message`` (what the monitor's ingest runs per message: topic, typed decode with
sanitising, rows) on the real documents of ``tests/fakes/fleet_feed.py`` (a telemetry envelope
with a DDSketch, a status, a drift window with its profile, a swap event, a first sample
chunk), and the same documents with a hostile string (an escaped lone surrogate and NUL), which
takes the slower cleaning walk. Encode: the agent's documents (``Status``,
``TelemetryReport``, ``DriftReport``) to bytes. Each figure is the best of ``--rounds`` runs of
``--n`` calls, in microseconds of process CPU time.

Usage: python -m benchmarks.wire [--rounds 7] [--n 300] (from the repository root). Prints
one JSON document.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

from edge_agent.fleet.monitor.payloads import parse_message
from edge_agent.wire import DriftReport, Status, TelemetryReport
from edge_agent.wire.telemetry import Envelope
from tests.fakes import fleet_feed as feed

NOW = time.time()


def best_us(call: Callable[[], object], rounds: int, n: int) -> float:
    """Best per-call CPU time over ``rounds`` runs of ``n`` calls, in microseconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(n):
            call()
        best = min(best, (time.process_time() - started) / n)
    return round(best * 1e6, 1)


def hostile(payload: bytes) -> bytes:
    """``payload`` with its first string value prefixed by an escaped surrogate and NUL."""
    head, sep, tail = payload.partition(b"\n")
    marker = head.index(b':"') + 2
    return head[:marker] + b"\\ud800\\u0000" + head[marker:] + sep + tail


def main() -> None:
    """Measure and print the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    messages = {
        "telemetry": feed.telemetry("cam-1", 1),
        "status": feed.status("cam-1"),
        "drift": feed.drift_messages("digits", 3.0)[0],
        "rollout": feed.rollout("digits", "2", "rejected", "low", agreement=0.4),
        "samples": feed.sample_chunks("d" * 32)[0],
    }
    decode: dict[str, dict[str, float | int]] = {}
    for channel, payload in messages.items():
        topic = f"ea/v1/cam-1/{channel}"
        bad = hostile(payload)
        decode[channel] = {
            "bytes": len(payload),
            "benign_us": best_us(
                lambda t=topic, p=payload: parse_message(t, p, NOW, 1 << 22), args.rounds, args.n
            ),
            "hostile_us": best_us(
                lambda t=topic, p=bad: parse_message(t, p, NOW, 1 << 22), args.rounds, args.n
            ),
        }
    status = Status.decode(messages["status"])
    report = TelemetryReport.from_object(Envelope.decode(messages["telemetry"]).data)
    drift = DriftReport.from_object(Envelope.decode(messages["drift"]).data)
    encode = {
        name: best_us(document.encode, args.rounds, args.n)
        for name, document in (("status", status), ("telemetry", report), ("drift", drift))
    }
    print(
        json.dumps(
            {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "decode_per_message": decode,
                "encode_us": encode,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
