"""`edge-agent repo`: the operator's signed model repository (TUF)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from edge_agent.errors import UpdateError
from edge_agent.trust.operator.publish import (
    DELTA_MAX_RATIO,
    DeltaPolicy,
    add_release,
    repo_status,
)
from edge_agent.trust.operator.repository import ALL_ROLES, OperatorRepository, RoleKeys, utc_now

_REPO = click.argument("repo", type=click.Path(file_okay=False, path_type=Path))
_KEYS = click.option(
    "--keys",
    "keys_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of private keys (default REPO/keys). Mount the offline root/targets keys "
    "only for the commands that need them.",
)


@click.group()
def repo() -> None:
    """Create and maintain the signed (TUF) repository that devices trust.

    Root and targets keys belong offline; snapshot, timestamp and rollouts keys may stay on the
    registry host. See docs/registry.md.
    """


@repo.command("init")
@_REPO
@_KEYS
@click.option("--root-keys", default=1, show_default=True, help="How many root keys.")
@click.option("--root-threshold", default=1, show_default=True, help="Root signatures needed.")
@click.option("--targets-keys", default=1, show_default=True, help="How many targets keys.")
@click.option("--targets-threshold", default=1, show_default=True, help="Targets sigs needed.")
@click.option(
    "--expiry",
    multiple=True,
    metavar="ROLE=DAYS",
    help=f"Validity of a role's metadata (roles: {', '.join(ALL_ROLES)}); repeatable.",
)
def init(
    repo: Path,
    keys_dir: Path | None,
    root_keys: int,
    root_threshold: int,
    targets_keys: int,
    targets_threshold: int,
    expiry: tuple[str, ...],
) -> None:
    """Create keys and the first signed metadata in REPO; prints where root.json is.

    Devices are provisioned with REPO/metadata/1.root.json and trust nothing else.
    """
    shapes = {
        "root": RoleKeys(root_keys, root_threshold),
        "targets": RoleKeys(targets_keys, targets_threshold),
    }
    created = OperatorRepository.init(repo, keys_dir, shapes, _expiry_days(expiry))
    click.echo(f"created {repo}; keys in {created.keys_dir} (0600)")
    click.echo(f"provision devices with {created.metadata_dir / '1.root.json'}")
    click.echo("move the root-* and targets-* keys offline now")


@repo.command("add-model")
@_REPO
@click.argument(
    "packages",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@_KEYS
@click.option(
    "--delta-from",
    "delta_from",
    type=click.IntRange(min=1),
    default=None,
    metavar="RELEASE",
    help="Publish each variant's delta from this release (default: the newest published).",
)
@click.option(
    "--no-delta",
    is_flag=True,
    help=f"Publish no delta (by default one is, when at most {DELTA_MAX_RATIO:.0%} of the model).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the release as JSON.")
def add_model_cmd(
    repo: Path,
    packages: tuple[Path, ...],
    keys_dir: Path | None,
    delta_from: int | None,
    no_delta: bool,
    as_json: bool,
) -> None:
    """Publish PACKAGES (made by `edge-agent convert package`) as the model's next release.

    Several packages of the same name and version become the variants of one release (e.g.
    int8 TFLite for a Pi, an Edge TPU build for Coral, ONNX for Jetson); each device installs
    the one its device config runs best (the manifests' target devices and delegates). Needs
    the targets key. Each manifest rides in its signed target's custom metadata.

    Each variant also gets a signed delta from the same variant of the newest published
    release (or --delta-from RELEASE) when the delta is small enough (--no-delta): devices that
    hold that release download the delta and rebuild the model (docs/registry.md).
    """
    if no_delta and delta_from is not None:
        raise click.UsageError("--no-delta and --delta-from contradict each other; give one")
    notes: list[str] = []
    variants = add_release(
        OperatorRepository(repo, keys_dir),
        list(packages),
        DeltaPolicy(enabled=not no_delta, from_release=delta_from),
        notes.append,
    )
    release = variants[0]
    if as_json:
        described = [
            {
                "target": v.target_path,
                "sha256": v.sha256,
                "length": v.length,
                "target_devices": v.manifest.get("target_devices", []),
                "target_delegates": v.manifest.get("target_delegates", []),
                "deltas": [d.as_custom() for d in v.deltas],
            }
            for v in variants
        ]
        click.echo(
            json.dumps(
                {
                    "name": release.name,
                    "release": release.release,
                    "target": release.target_path,
                    "sha256": release.sha256,
                    "length": release.length,
                    "version": release.manifest_version,
                    "variants": described,
                    "notes": notes,
                }
            )
        )
        return
    for variant in variants:
        click.echo(
            f"published {variant.name} {variant.manifest_version} as release "
            f"{variant.release}: {variant.target_path} ({variant.length} B)"
        )
        for delta in variant.deltas:
            click.echo(
                f"  delta from release {delta.from_release}: {delta.target_path} "
                f"({delta.length} B, {delta.length / max(variant.length, 1):.0%} of the model)"
            )
    for note in notes:
        click.echo(f"  {note}")


@repo.command("refresh")
@_REPO
@_KEYS
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(ALL_ROLES),
    help="Re-sign this role even if not expiring (repeatable).",
)
@click.option(
    "--valid-for-hours",
    type=click.FloatRange(min=0.01),
    default=None,
    help="Validity of the re-signed metadata (default: the repository's period).",
)
def refresh(
    repo: Path, keys_dir: Path | None, roles: tuple[str, ...], valid_for_hours: float | None
) -> None:
    """Re-sign metadata that expires within half its period (timestamp always).

    Run it from cron on the registry host with the online keys, e.g. every hour.
    """
    operator = OperatorRepository(repo, keys_dir)
    chosen = set(roles) | {"timestamp"}
    for status in repo_status(operator).roles:
        period = operator.settings.expiry_days[status.role]
        if status.days_left < period / 2:
            chosen.add(status.role)
    valid_for = timedelta(hours=valid_for_hours) if valid_for_hours else None
    written = operator.refresh(tuple(sorted(chosen)), valid_for)
    click.echo(f"re-signed: {', '.join(written)}")


@repo.command("rotate-key")
@_REPO
@click.argument("role", type=click.Choice(ALL_ROLES))
@_KEYS
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="How many new keys (default: as many as now).",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    default=None,
    help="Signatures needed from now on (default: as now).",
)
def rotate_key(
    repo: Path, role: str, keys_dir: Path | None, count: int | None, threshold: int | None
) -> None:
    """Replace every key of ROLE; the old keys are revoked and moved to KEYS/retired/.

    Needs the root keys (for rollouts: the targets key). Devices follow the new root chain.
    """
    operator = OperatorRepository(repo, keys_dir)
    shape = None
    if count is not None or threshold is not None:
        status = {s.role: s for s in repo_status(operator).roles}[role]
        shape = RoleKeys(count or len(status.keyids), threshold or status.threshold)
    new_keys = operator.rotate_key(role, shape)
    for key in new_keys:
        click.echo(f"new {role} key {key.keyid[:12]}: {key.path}")


@repo.command("status")
@_REPO
@_KEYS
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(repo: Path, keys_dir: Path | None, as_json: bool) -> None:
    """Versions, expiry dates, keys present here, and published models."""
    report = repo_status(OperatorRepository(repo, keys_dir))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "roles": [
                        {
                            "role": r.role,
                            "version": r.version,
                            "expires": r.expires.isoformat(),
                            "days_left": round(r.days_left, 3),
                            "threshold": r.threshold,
                            "keys": len(r.keyids),
                            "keys_here": r.keys_here,
                        }
                        for r in report.roles
                    ],
                    "models": [
                        {
                            "name": m.name,
                            "release": m.release,
                            "version": m.manifest_version,
                            "target": m.target_path,
                            "length": m.length,
                            "sha256": m.sha256,
                            "deltas": [d.as_custom() for d in m.deltas],
                        }
                        for m in report.models
                    ],
                    "other_targets": report.other_targets,
                },
                indent=2,
            )
        )
        return
    console = Console()
    roles = Table(title=f"roles (now {utc_now().isoformat()})")
    for column in ("role", "version", "expires", "days left", "threshold", "keys here"):
        roles.add_column(column)
    for r in report.roles:
        style = "red" if r.days_left < 0 else ("yellow" if r.days_left < 1 else "")
        roles.add_row(
            r.role,
            str(r.version),
            r.expires.isoformat(),
            f"{r.days_left:.2f}",
            f"{r.threshold} of {len(r.keyids)}",
            str(r.keys_here),
            style=style,
        )
    console.print(roles)
    models = Table(title="models")
    for column in ("name", "release", "version", "bytes", "target", "deltas"):
        models.add_column(column)
    for m in report.models:
        deltas = ", ".join(f"from {d.from_release}: {d.length} bytes" for d in m.deltas)
        models.add_row(
            m.name, str(m.release), m.manifest_version, str(m.length), m.target_path, deltas
        )
    console.print(models)


def _expiry_days(pairs: tuple[str, ...]) -> dict[str, int]:
    days: dict[str, int] = {}
    for pair in pairs:
        role, _, value = pair.partition("=")
        if role not in ALL_ROLES or not value.isdigit() or int(value) < 1:
            raise UpdateError(
                f"--expiry {pair!r}: use ROLE=DAYS with ROLE one of "
                f"{', '.join(ALL_ROLES)} and DAYS >= 1"
            )
        days[role] = int(value)
    return days
