"""A file of unknown size shorter than the first ranges asked for it.

Regression: the adaptive window starts small, so the first ranges of a file whose size is not
known yet (TUF metadata) go out as several requests. For a 558-byte timestamp.json the second
starts 512 KiB in, and the registry refuses it ("offset beyond the end"); when that refusal
arrived before the first range's data, the download failed and the demo's rollout lost a device.
"""

from __future__ import annotations

from edge_agent.config import FetchSettings
from edge_agent.trust.device.transfer import ChunkTransfer
from edge_agent.trust.protocol import BAD_REQUEST, OK, ChunkRequest, ChunkResponse
from tests.fakes.registry_link import FakeRegistryLink

DATA = b"t" * 558


class ScriptedLink(FakeRegistryLink):
    """Answers each range like the registry, the later ranges' answers first."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[ChunkRequest] = []

    def send(self, request: ChunkRequest) -> None:
        self.sent.append(request)
        if len(self.sent) < 2:
            return  # hold the first range's data until a later range was asked for
        for asked in reversed(self.sent):
            self.deliver(_answer(asked))
        self.sent.clear()


def _answer(request: ChunkRequest) -> ChunkResponse:
    if request.offset > len(DATA):
        return ChunkResponse(
            request.id,
            request.path,
            request.offset,
            BAD_REQUEST,
            len(DATA),
            reason=f"offset beyond the end ({len(DATA)} B)",
        )
    end = min(request.offset + request.length, len(DATA))
    return ChunkResponse(
        request.id, request.path, request.offset, OK, len(DATA), DATA[request.offset : end]
    )


def test_a_refusal_past_the_end_of_a_short_file_teaches_its_size_instead_of_failing() -> None:
    # whole-chunk units, as fetch_stream asks for a file of unknown size
    settings = FetchSettings(chunk_timeout_s=1.0, deadline_s=10.0, min_frame_bytes=256 * 1024)
    link = ScriptedLink()
    transfer = ChunkTransfer(link, "metadata/timestamp.json", settings)  # type: ignore[arg-type]
    assert transfer.window.window < 2 * settings.run  # the first ranges go out as several
    chunks = list(transfer.chunks(None, max_total=1 << 20))
    assert [(index, bytes(data), total) for index, data, total, _crc in chunks] == [
        (0, DATA, len(DATA))
    ]
