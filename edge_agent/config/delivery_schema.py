"""Config of how the agent follows the signed model registry."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edge_agent.config.base import StrictModel


class ModelDeliverySettings(StrictModel):
    """Follow the signed model registry (over the broker) for these models."""

    root: Path = Field(
        description="The trust anchor: the repository's `root.json`, provisioned once; later "
        "root rotations are followed through signed metadata."
    )
    models: list[str] = Field(
        min_length=1,
        description="Names of the models to follow; each newest signed release is downloaded, "
        "verified, shadow-checked and activated.",
    )
    group: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
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
    chunk_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Bytes per chunk request (below the broker's message size limit).",
    )
    window: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Chunks in flight; memory in use is about window x chunk_bytes.",
    )
    keep_versions: int = Field(
        default=2, ge=1, le=20, description="Installed versions kept per model (GC)."
    )
