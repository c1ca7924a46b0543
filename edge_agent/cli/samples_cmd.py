"""`edge-agent samples`: list and export captured samples from the on-device sample store."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from edge_agent.capture.store import INDEX, SampleInfo, SampleStore
from edge_agent.delivery.layout import StoreLayout
from edge_agent.errors import ConfigError

DEFAULT_DIR = StoreLayout.default().samples


def _store_dir(directory: Path | None, config: Path | None) -> Path:
    """The store folder: ``--dir``, else the config's ``capture.dir`` / ``<store_dir>/samples``."""
    if directory is not None:
        return directory
    if config is not None:
        from edge_agent.config import read_yaml

        data, _ = read_yaml(config)
        data = data if isinstance(data, dict) else {}
        capture = data.get("capture") or {}
        if isinstance(capture, dict) and capture.get("dir"):
            return Path(str(capture["dir"]))
        store_dir = data.get("store_dir")
        return StoreLayout(Path(str(store_dir))).samples if store_dir else DEFAULT_DIR
    return DEFAULT_DIR


def _open(directory: Path | None, config: Path | None) -> SampleStore:
    path = _store_dir(directory, config)
    if not (path / INDEX).exists():
        raise ConfigError(
            f"no sample store in {path} (no {INDEX}); pass --dir or --config of "
            "an agent that captures samples"
        )
    return SampleStore(path, max_bytes=2**62)


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).isoformat(timespec="seconds")


def _select(
    store: SampleStore,
    model: str | None,
    strategy: str | None,
    limit: int | None,
    ids: tuple[str, ...] = (),
) -> list[SampleInfo]:
    if ids:
        found = [store.get(i) for i in ids]
        missing = [i for i, info in zip(ids, found, strict=True) if info is None]
        if missing:
            raise ConfigError(f"no sample with id {', '.join(missing)} in {store.directory}")
        return [info for info in found if info is not None]
    return store.list(model=model, strategy=strategy, limit=limit, newest_first=True)


_store_options = [
    click.option(
        "--dir",
        "directory",
        type=click.Path(path_type=Path, file_okay=False),
        help="Sample store folder (default: from --config, else /var/lib/edge-agent/samples).",
    ),
    click.option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Agent config whose capture.dir / store_dir holds the samples.",
    ),
    click.option("--model", help="Only samples of this model."),
    click.option(
        "--strategy",
        type=click.Choice(["random", "reservoir", "low_confidence", "class", "drift", "on_demand"]),
        help="Only samples captured by this strategy.",
    ),
]


def _with_store_options(func: Any) -> Any:
    for option in reversed(_store_options):
        func = option(func)
    return func


@click.group()
def samples() -> None:
    """Inspect and export the inputs/outputs the agent captured (see docs/capture.md)."""


@samples.command("list")
@_with_store_options
@click.option("--limit", type=int, default=50, show_default=True, help="Newest N samples.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_samples(
    directory: Path | None,
    config: Path | None,
    model: str | None,
    strategy: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List captured samples, newest first, with the store's size and drop counters."""
    with _open(directory, config) as store:
        rows = _select(store, model, strategy, limit)
        stats = store.stats()
    if as_json:
        for info in rows:
            click.echo(json.dumps(info.as_dict()))
        return
    table = Table(
        title=f"{stats['samples']} samples, {stats['bytes'] / 1e6:.1f} MB "
        f"({stats['pending_upload']} to upload, {stats['dropped']} dropped)"
    )
    for column in (
        "id",
        "time",
        "model",
        "version",
        "strategy",
        "prediction",
        "confidence",
        "bytes",
        "uploaded",
    ):
        table.add_column(column)
    for info in rows:
        table.add_row(
            info.id[:12],
            _when(info.created),
            info.model,
            info.version,
            info.strategy,
            "" if info.prediction is None else str(info.prediction),
            "" if info.confidence is None else f"{info.confidence:.3f}",
            str(info.size),
            "yes" if info.uploaded else "no",
        )
    Console().print(table)


@samples.command("export")
@_with_store_options
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@click.option("--id", "ids", multiple=True, help="Export these sample ids (repeatable).")
@click.option("--limit", type=int, default=None, help="Newest N samples (default: all).")
def export(
    directory: Path | None,
    config: Path | None,
    model: str | None,
    strategy: str | None,
    out: Path,
    ids: tuple[str, ...],
    limit: int | None,
) -> None:
    """Copy samples into OUT, for labelling or retraining.

    One `<id>.npz` per sample (arrays `input:<name>`, `output:<name>`) and `samples.jsonl`
    with their metadata.
    """
    with _open(directory, config) as store:
        rows = _select(store, model, strategy, limit, ids)
        out.mkdir(parents=True, exist_ok=True)
        with (out / "samples.jsonl").open("a", encoding="utf-8") as index:
            for info in rows:
                shutil.copyfile(store.payload_dir / f"{info.id}.npz", out / f"{info.id}.npz")
                index.write(json.dumps({**info.as_dict(), "file": f"{info.id}.npz"}) + "\n")
    click.echo(f"exported {len(rows)} sample(s) to {out}")
