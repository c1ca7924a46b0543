"""Chunks in frames: a cut link costs the frame in flight, not the chunk.

A scripted registry answers each range request the way ``registry serve`` does (frames of the
request's ``chunk`` bytes, in order) and can cut the link after a number of frames: the rest
of what was asked is lost and the link reconnects (its generation moves on).
"""

from __future__ import annotations

import os
import zlib
from typing import Any

from edge_agent.config import FetchSettings
from edge_agent.trust.device.transfer import ChunkTransfer
from edge_agent.trust.protocol import OK, ChunkRequest, ChunkResponse
from tests.fakes.registry_link import FakeRegistryLink

UNIT, CHUNK = 16 * 1024, 256 * 1024
DATA = os.urandom(3 * CHUNK + 5000)  # a short last chunk


class FrameLink(FakeRegistryLink):
    """Answers every range at once, frame by frame; cuts after ``cut_after`` frames."""

    def __init__(self, cut_after: list[int] | None = None, lose: set[int] | None = None) -> None:
        super().__init__()
        self.requests: list[ChunkRequest] = []
        self.frames_sent = 0
        self.bytes_sent = 0
        self._cuts = sorted(cut_after or [])
        self._lose = lose or set()  # offsets whose frame is lost on the way (no cut)

    def send(self, request: ChunkRequest) -> None:
        self.requests.append(request)
        end = min(request.offset + request.length, len(DATA))
        for offset in range(request.offset, end, request.frame_bytes):
            if self._cuts and self.frames_sent >= self._cuts[0]:
                self._cuts.pop(0)
                self.generation += 1  # the rest of this range never arrives
                return
            data = DATA[offset : min(offset + request.frame_bytes, end)]
            self.frames_sent += 1
            self.bytes_sent += len(data)
            if offset in self._lose:
                self._lose.discard(offset)
                continue
            self.deliver(ChunkResponse(request.id, request.path, offset, OK, len(DATA), data))


def settings(**changes: Any) -> FetchSettings:
    base: dict[str, Any] = {"chunk_bytes": CHUNK, "min_frame_bytes": UNIT}
    return FetchSettings(chunk_timeout_s=0.5, deadline_s=20, **{**base, **changes})


def fetch(link: FrameLink, fetch_settings: FetchSettings) -> dict[int, bytes]:
    transfer = ChunkTransfer(link, "targets/model.onnx", fetch_settings)  # type: ignore[arg-type]
    got: dict[int, bytes] = {}
    for index, data, total, crc in transfer.chunks(len(DATA)):
        assert index not in got
        assert total == len(DATA)
        assert crc == zlib.crc32(data)  # what the partial file's journal re-checks
        got[index] = bytes(data)
    return got


def whole(got: dict[int, bytes]) -> bytes:
    return b"".join(got[i] for i in sorted(got))


def test_an_unmeasured_link_gets_small_frames_assembled_into_whole_chunks():
    link = FrameLink()
    got = fetch(link, settings())
    assert sorted(got) == [0, 1, 2, 3]
    assert whole(got) == DATA
    assert link.requests[0].chunk < CHUNK  # before a rate is known the link may be slow
    assert link.bytes_sent == len(DATA)


def test_a_cut_re_asks_from_the_first_missing_frame_not_the_chunk():
    link = FrameLink(cut_after=[5, 23])  # mid-chunk, twice
    got = fetch(link, settings())
    assert whole(got) == DATA
    assert link.bytes_sent == len(DATA)  # nothing that landed was sent again
    resumed = [r.offset for r in link.requests if r.offset % CHUNK]
    assert resumed, "no range started inside a chunk"
    assert all(offset % UNIT == 0 for offset in resumed)


def test_a_frame_lost_inside_a_range_is_asked_again():
    link = FrameLink(lose={CHUNK})  # a frame starts there whatever the frame size
    got = fetch(link, settings())
    assert whole(got) == DATA
    assert sum(r.offset <= CHUNK < r.offset + r.length for r in link.requests) == 2


def test_splitting_is_off_when_the_smallest_frame_does_not_divide_a_chunk():
    link = FrameLink()
    got = fetch(link, settings(min_frame_bytes=3 * 1024 * 5))  # 15 KiB does not divide 256 KiB
    assert whole(got) == DATA
    assert {r.chunk for r in link.requests} == {CHUNK}
