"""Config of how the agent follows the signed model registry, and how it fetches files from it.

:class:`FetchSettings` are the chunked-transfer knobs (used as they are by the TUF client's MQTT
fetcher and by ``edge-agent models pull``); :class:`ModelDeliverySettings`, the ``registry:``
section, extends them, so its keys stay flat (``registry.chunk_bytes``, ``registry.window``, ...).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edge_agent.config.base import StrictModel
from edge_agent.names import Group, ModelName
from edge_agent.trust.protocol import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES


class FetchSettings(StrictModel):
    """How a device fetches a file from the registry: chunks, a window of them, retries."""

    chunk_bytes: int = Field(
        default=256 * 1024,
        ge=MIN_CHUNK_BYTES,
        le=MAX_CHUNK_BYTES,
        description="Bytes per chunk: the unit a download is checksummed, persisted and resumed "
        "in, and the largest frame (MQTT message); at most the registry's max chunk size and "
        "below the broker's message size limit. On a slow link a chunk travels in smaller "
        "frames (`min_frame_bytes`), so a cut loses a frame, not the chunk.",
    )
    min_frame_bytes: int = Field(
        default=16 * 1024,
        ge=MIN_CHUNK_BYTES,
        le=MAX_CHUNK_BYTES,
        description="Smallest frame (MQTT message), and the unit the adaptive window counts in. "
        "Frames are about 5 ms of the measured link rate (a whole chunk on a fast link), so "
        "a cut link loses a frame, not a chunk, and the window can stay within a slow link's "
        "buffer. Splitting is off when it is not smaller than `chunk_bytes` or does not "
        "divide it (frames and window are then whole chunks).",
    )
    window: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Most chunks in flight; memory in use is at most about window x "
        "chunk_bytes. With `adaptive_window` the window follows the link below this cap.",
    )
    window_floor: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Fewest units (`min_frame_bytes` each; chunks when splitting is off) the "
        "adaptive window keeps in flight.",
    )
    adaptive_window: bool = Field(
        default=True,
        description="Size the window to the measured bandwidth x (twice the round trip + 25 "
        "ms), plus one frame (between `window_floor` and `window`); off: always `window` "
        "chunks.",
    )
    chunks_per_request: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Most chunks one range request asks for (at most half the window, so "
        "two ranges overlap).",
    )
    chunk_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds a range may stay silent before its missing chunks are asked again.",
    )
    max_attempts: int = Field(
        default=6, ge=1, le=100, description="Timeouts per chunk before the transfer fails."
    )
    backoff_base_s: float = Field(
        default=0.25, ge=0, le=60, description="First retry delay (seconds); doubles per attempt."
    )
    backoff_max_s: float = Field(
        default=8.0, ge=0, le=3600, description="Longest retry delay (seconds)."
    )
    deadline_s: float = Field(
        default=900.0, gt=0, description="Longest the download of one file may take (seconds)."
    )
    flush_every: int = Field(
        default=16,
        ge=1,
        description="Chunks between persisting a partial download's progress (or "
        "`flush_interval_s`, whichever comes first), so a resumed download re-fetches little.",
    )
    flush_interval_s: float = Field(
        default=0.25,
        gt=0,
        description="Seconds between persisting a partial download's progress (a background "
        "write).",
    )

    @property
    def run(self) -> int:
        """Chunks per range request: at most half the window, so two ranges overlap."""
        return self.run_for(self.window)

    def run_for(self, window: int) -> int:
        """Chunks per range request with ``window`` chunks in flight (half of it at most)."""
        return max(1, min(self.chunks_per_request, window // 2))


class ModelDeliverySettings(FetchSettings):
    """Follow the signed model registry (over the broker) for these models.

    Also holds the fetch settings (chunk size, window, timeouts), used by the fetcher as they are.
    """

    root: Path = Field(
        description="The trust anchor: the repository's `root.json`, provisioned once; later "
        "root rotations are followed through signed metadata."
    )
    models: list[ModelName] = Field(
        min_length=1,
        description="Names of the models to follow; each newest signed release is downloaded, "
        "verified, shadow-checked and activated.",
    )
    group: Group | None = Field(
        default=None,
        description="Rollout group of this device: only a signed rollout for this group moves "
        "it to a new release, in the wave its device id hashes to. Unset: always the newest "
        "signed release.",
    )
    check_interval_s: float = Field(
        default=3600.0,
        ge=10,
        le=7 * 86400,
        description="Check for new releases at least this often, besides the registry's "
        "retained notification.",
    )
    allow_downgrade: bool = Field(
        default=False,
        description="Accept a validly signed release older than the newest installed one.",
    )
    keep_versions: int = Field(
        default=2, ge=1, le=20, description="Installed versions kept per model (GC)."
    )
