"""`edge-agent models`: the device's model store, and a one-shot signed pull."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from edge_agent.cli import _params
from edge_agent.cli._broker import broker_options
from edge_agent.cli._link_windows import EXIT_OUTSIDE_WINDOWS, pause_notices, wait_for_window
from edge_agent.cli._settings import field_item, field_range
from edge_agent.config import BrokerSettings, FetchSettings, LinkSettings, resolve_device_config
from edge_agent.delivery.layout import StoreLayout
from edge_agent.delivery.store import InstalledModel, ModelStore, installed_blobs
from edge_agent.delivery.update import Transition, UpdateLimits, UpdateManager, UpdateState
from edge_agent.errors import ConfigError
from edge_agent.transport.budget import LinkBudget
from edge_agent.transport.client import MqttClient
from edge_agent.trust.device.client import DeviceUpdater, clean_downloads, provision
from edge_agent.trust.device.link import RegistryLink
from edge_agent.trust.device.variants import platform_of

_STORE = click.option(
    "--store-dir",
    "--store",
    "layout",
    type=click.Path(file_okay=False, path_type=Path),
    default=StoreLayout.default().root,
    show_default=True,
    callback=lambda _ctx, _param, value: _layout(value),
    help="The agent's store_dir: models are kept in STORE_DIR/models, the registry's signed "
    "metadata and partial downloads in STORE_DIR/trust (the layout the agent uses).",
)


def _layout(store_dir: Path) -> StoreLayout:
    """The layout under ``--store-dir``; a click error when it points at a model store itself."""
    try:
        return StoreLayout(store_dir).check()
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--store-dir") from exc


class _ChunkWindowOption(click.Option):
    """``--window`` (chunks in flight), which points to ``--link-window`` when given hours."""

    def type_cast_value(self, ctx: click.Context, value: Any) -> Any:
        """The chunk count; a time window such as ``01:00-05:00`` is a usage error saying so."""
        if isinstance(value, str) and ":" in value:
            raise click.BadParameter(
                f"{value!r} is a time window; --window is the number of chunks in flight, "
                "the hours to download in are --link-window HH:MM-HH:MM",
                ctx=ctx,
                param=self,
            )
        return super().type_cast_value(ctx, value)


@click.group()
def models() -> None:
    """Installed models: list, activate, roll back, and pull signed ones from the registry."""


@models.command("list")
@_STORE
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_models(layout: StoreLayout, as_json: bool) -> None:
    """Every installed version and its slot (read-only: safe while the agent runs)."""
    store = ModelStore(layout.models, readonly=True)
    installed = store.list()
    if as_json:
        click.echo(json.dumps([_as_dict(m) for m in installed], indent=2))
        return
    table = Table()
    for column in ("name", "version", "state", "manifest version", "installed", "sha256"):
        table.add_column(column)
    for m in installed:
        table.add_row(
            m.name,
            str(m.version),
            m.state,
            str(m.manifest.get("version", "")),
            datetime.fromtimestamp(m.installed_at, timezone.utc).isoformat(timespec="seconds"),
            m.sha256[:16],
        )
    Console().print(table)


@models.command("activate")
@_STORE
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
def activate(layout: StoreLayout, name: str, version: int) -> None:
    """Make VERSION of NAME active (verified first); the old active becomes previous."""
    with ModelStore(layout.models) as store:
        model = store.activate(name, version)
    click.echo(f"{model.name} v{model.version} active ({model.path})")


@models.command("rollback")
@_STORE
@click.argument("name")
def rollback(layout: StoreLayout, name: str) -> None:
    """Make the previous version of NAME active again."""
    with ModelStore(layout.models) as store:
        model = store.rollback(name)
    click.echo(f"{model.name} v{model.version} active again ({model.path})")


@models.command("pull")
@broker_options()
@click.option(
    "--root",
    "root_json",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The repository's root.json (the trust anchor this device is given).",
)
@_STORE
@click.option(
    "--device-id", type=_params.DEVICE_ID, required=True, help="This device's id (its MQTT topics)."
)
@click.option(
    "--device",
    "device_ref",
    default="auto",
    show_default=True,
    help="Device config (a shipped class such as rpi5-coral, a YAML path, or auto): which "
    "variant of a release to install (its target devices and delegates).",
)
@click.option(
    "--model",
    "names",
    type=_params.MODEL_NAME,
    multiple=True,
    help="Model to pull (repeatable; default: every model in the registry).",
)
@click.option(
    "--chunk-bytes",
    type=field_range(FetchSettings, "chunk_bytes"),
    default=FetchSettings.field_default("chunk_bytes"),
    show_default=True,
    help="Bytes per chunk (one MQTT message); at most the registry's --max-chunk.",
)
@click.option(
    "--window",
    cls=_ChunkWindowOption,
    type=field_range(FetchSettings, "window"),
    default=FetchSettings.field_default("window"),
    show_default=True,
    help="Most chunks in flight (memory used is at most about window x chunk bytes); the "
    "window adapts to the link below it. (The hours to download in: --link-window.)",
)
@click.option(
    "--max-rate-kbps",
    type=field_range(LinkSettings, "max_rate_kbps"),
    default=None,
    help="Cap the download at this many kilobits per second (the agent's link.max_rate_kbps; "
    "default: no cap).",
)
@click.option(
    "--link-window",
    "link_windows",
    type=field_item(LinkSettings, "windows"),
    multiple=True,
    metavar="HH:MM-HH:MM",
    help="Download only in this local time window (repeatable; may span midnight, e.g. "
    "22:00-06:00; the agent's link.windows; default: any time). Outside every window the pull "
    "waits until one opens (or, with --no-wait, exits 75); if a window closes mid-download, "
    "the download pauses and resumes when the next one opens.",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help=f"Outside every --link-window, fetch nothing and exit with status {EXIT_OUTSIDE_WINDOWS} "
    "at once instead of waiting (for a cron job that tries again later).",
)
@click.option(
    "--chunk-timeout",
    type=field_range(FetchSettings, "chunk_timeout_s"),
    default=FetchSettings.field_default("chunk_timeout_s"),
    show_default=True,
    help="Seconds a request may stay unanswered before it is re-sent.",
)
@click.option(
    "--timeout",
    type=field_range(FetchSettings, "deadline_s"),
    default=FetchSettings.field_default("deadline_s"),
    show_default=True,
    help="Longest the download of one model may take, seconds (time paused outside every "
    "--link-window does not count).",
)
@click.option(
    "--allow-downgrade",
    is_flag=True,
    help="Install an older signed release than the newest installed one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final transitions as JSON.")
def pull(
    broker: BrokerSettings,
    root_json: Path,
    layout: StoreLayout,
    device_id: str,
    device_ref: str,
    names: tuple[str, ...],
    chunk_bytes: int,
    window: int,
    max_rate_kbps: float | None,
    link_windows: tuple[str, ...],
    no_wait: bool,
    chunk_timeout: float,
    timeout: float,
    allow_downgrade: bool,
    as_json: bool,
) -> None:
    """Refresh signed metadata, download, verify, install and activate the newest models.

    Exits 0 when every model is active and up to date, 1 with the reason otherwise, 75 when
    --no-wait finds every --link-window closed. The download resumes where an interrupted pull
    stopped.
    """
    metadata_dir = layout.trust_metadata
    download_dir = layout.trust_downloads
    device, _ = resolve_device_config(device_ref)
    platform = platform_of(device)
    provision(metadata_dir, root_json)
    settings = FetchSettings(
        chunk_bytes=chunk_bytes, window=window, chunk_timeout_s=chunk_timeout, deadline_s=timeout
    )
    link_settings = LinkSettings(max_rate_kbps=max_rate_kbps, windows=list(link_windows))
    budget = LinkBudget(link_settings.max_bytes_per_s, link_settings.windows)
    wait_for_window(budget, no_wait=no_wait)
    results: list[Transition] = []
    with (
        ModelStore(layout.models) as store,
        MqttClient.from_settings(broker, f"{device_id}-pull") as client,
    ):
        client.connect()
        link = RegistryLink(client, device_id, budget if budget.limited else None)

        def source(cancel: threading.Event) -> DeviceUpdater:
            return DeviceUpdater(
                metadata_dir,
                client,
                device_id,
                download_dir,
                settings,
                cancel=cancel,
                link=link,
                platform=platform,
            )

        if not names:
            with source(threading.Event()) as updater:
                updater.refresh()
                names = tuple(sorted({r.name for r in updater.releases()}))
        manager = UpdateManager(
            store,
            source,
            lambda topic, payload: client.publish(topic, payload, qos=1),
            device_id,
            limits=UpdateLimits(download_s=timeout),
            allow_downgrade=allow_downgrade,
            link_paused=budget.paused if budget.windows else None,
        )
        with _progress(as_json) as bar, pause_notices(budget, _say(bar)):
            for name in names:
                task = bar.add_task(name, total=None) if bar is not None else None

                def show(done: int, total: int, task: object = task) -> None:
                    if bar is not None and task is not None:
                        bar.update(task, completed=done, total=total)  # type: ignore[arg-type]

                results.append(manager.update(name, show))
        link.close()
        clean_downloads(
            download_dir,
            installed_blobs(store),
            partials=all(r.state is UpdateState.ACTIVE for r in results),
        )
    failed = [r for r in results if r.state is not UpdateState.ACTIVE]
    if as_json:
        click.echo(json.dumps([r.as_object() for r in results], indent=2))
    else:
        for r in results:
            colour = "green" if r.state is UpdateState.ACTIVE else "red"
            click.secho(f"{r.model} v{r.version}: {r.state.value} ({r.reason})", fg=colour)
    if not names:
        click.secho("the registry has no models", fg="yellow", err=True)
    if failed:
        raise SystemExit(1)


def _say(bar: Progress | None) -> Callable[[str], None]:
    """Print a line on stderr, above the progress bar while there is one."""
    if bar is None:
        return lambda text: click.echo(text, err=True)
    return lambda text: bar.console.print(text, markup=False, highlight=False)


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(quiet: bool) -> Progress | _NoProgress:
    if quiet:
        return _NoProgress()
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _as_dict(model: InstalledModel) -> dict[str, object]:
    return {
        "name": model.name,
        "version": model.version,
        "state": model.state,
        "path": str(model.path),
        "sha256": model.sha256,
        "installed_at": model.installed_at,
        "manifest_version": model.manifest.get("version"),
    }
