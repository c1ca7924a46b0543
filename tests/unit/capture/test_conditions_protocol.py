import hashlib
import random

import pytest

from edge_agent.capture.conditions import (
    in_time_window,
    on_mains,
    parse_time_window,
    upload_blocked,
)
from edge_agent.capture.protocol import Reassembler, decode_chunk, encode_chunk
from edge_agent.config import UploadSettings
from edge_agent.telemetry.sensors import PowerSupply


def supply(kind: str, status: str | None = None, online: bool | None = None) -> PowerSupply:
    return PowerSupply(kind, kind, status, online, None, None, None, None)


def test_time_windows_including_across_midnight():
    night = parse_time_window("22:00-06:00")
    assert in_time_window(night, 23 * 60) and in_time_window(night, 5 * 60 + 59)
    assert not in_time_window(night, 6 * 60) and not in_time_window(night, 12 * 60)
    day = parse_time_window("09:30-17:00")
    assert in_time_window(day, 9 * 60 + 30) and not in_time_window(day, 17 * 60)
    assert in_time_window(parse_time_window("00:00-00:00"), 700)
    with pytest.raises(ValueError):
        parse_time_window("25:00-01:00")


def test_mains_power_detection():
    assert on_mains([])  # no battery at all: a mains-powered box
    assert not on_mains([supply("Battery", "Discharging")])
    assert on_mains([supply("Battery", "Discharging"), supply("Mains", online=True)])
    assert on_mains([supply("Battery", "Charging")])


def test_upload_blocked_says_why():
    settings = UploadSettings(only_on_mains=True, time_window="22:00-06:00")
    assert "window" in upload_blocked(settings, 12 * 60, [])
    assert "battery" in upload_blocked(settings, 23 * 60, [supply("Battery", "Discharging")])
    assert upload_blocked(settings, 23 * 60, []) is None
    assert upload_blocked(UploadSettings(enabled=False), 0, []) == "upload disabled"


def chunks_of(sample_id: str, data: bytes, size: int) -> list[bytes]:
    digest = hashlib.sha256(data).hexdigest()
    return [
        encode_chunk(
            {
                "v": 1,
                "kind": "sample",
                "id": sample_id,
                "offset": o,
                "size": len(data),
                "sha256": digest,
                **({"meta": {"m": 1}} if o == 0 else {}),
            },
            data[o : o + size],
        )
        for o in range(0, len(data), size)
    ]


def test_reassembly_out_of_order_with_duplicates_and_mixed_chunk_sizes():
    data = random.Random(1).randbytes(10_000)
    messages = chunks_of("s1", data, 1000)[:5] + chunks_of("s1", data, 3000)
    random.Random(2).shuffle(messages)
    messages += messages[:3]  # redelivered after a lost PUBACK
    receiver = Reassembler()
    done = [r for r in (receiver.add(m) for m in messages) if r is not None]
    assert len(done) == 1 and done[0].payload == data and done[0].meta == {"m": 1}
    assert receiver.duplicates >= 3


def test_a_corrupted_sample_is_not_accepted():
    data = b"x" * 100
    message = chunks_of("s2", data, 100)[0]
    tampered = message[:-1] + b"y"
    receiver = Reassembler()
    assert receiver.add(tampered) is None and receiver.corrupt == 1


@pytest.mark.parametrize(
    "payload", [b"no header", b"{}\nxx", b'{"v":1,"id":"a","offset":5,"size":6,"sha256":"00"}\nxx']
)
def test_malformed_chunks_are_value_errors(payload):
    with pytest.raises(ValueError):
        decode_chunk(payload)
