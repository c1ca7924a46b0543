"""`edge-agent fleet`: staged rollouts and the fleet simulator.

`fleet rollout create|status|pause|resume|abort|follow` (here) drive the rollout controller
(edge_agent/fleet/rollout) and print through :mod:`edge_agent.cli._rollout_view`;
`fleet simulate` (:mod:`edge_agent.cli.simulate_cmd`) runs a simulated fleet
(edge_agent/fleet/simulator); `fleet provision|revoke` (:mod:`edge_agent.cli.provision_cmd`)
give a device its broker credential, trust anchor and agent.yaml, and take the credential away.
The monitor is imported only when ``--monitor-db`` is given.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from edge_agent.cli import _params
from edge_agent.cli._rollout_view import show_rollouts
from edge_agent.cli.provision_cmd import provision_cmd, revoke_cmd
from edge_agent.cli.simulate_cmd import simulate
from edge_agent.errors import ConfigError, UpdateError
from edge_agent.fleet.rollout.controller import DEFAULT_WAVES, RolloutController
from edge_agent.fleet.rollout.gates import Decision, GateThresholds
from edge_agent.fleet.rollout.state import RolloutRecord
from edge_agent.trust.operator.repository import OperatorRepository

_GATES = GateThresholds()
"""Where the rollout gate options take their defaults."""


@click.group()
def fleet() -> None:
    """Operate a fleet: staged, gated rollouts and a simulated fleet for tests."""


fleet.add_command(provision_cmd)
fleet.add_command(revoke_cmd)


@fleet.group()
def rollout() -> None:
    """Roll a signed model release out to a device group in waves, gated by fleet health.

    The controller signs `rollouts/<group>.json` with the online `rollouts` key; devices act
    only on what verifies through TUF. Waves open while the monitor's data for the devices
    already on the release passes the gates; a failing gate rolls the group back on its own.
    """


REPO = click.option(
    "--repo",
    "repo_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The repository (made by `edge-agent repo init`).",
)
KEYS = click.option(
    "--keys",
    "keys_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Key directory with the rollouts, snapshot and timestamp keys [default: REPO/keys].",
)
STATE = click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Controller state file [default: REPO.rollouts.json next to REPO, outside what the "
    "registry serves].",
)
GROUP = click.option(
    "--group", type=_params.GROUP, required=True, help="Device group (rollouts/<group>.json)."
)
MONITOR_DB = click.option(
    "--monitor-db",
    help="The monitor's database URL (sqlite:///PATH or postgresql://...), read for the gates.",
)


def _controller(
    repo_dir: Path, keys_dir: Path | None, state_path: Path | None, monitor_db: str | None = None
) -> tuple[RolloutController, Any]:
    repo = OperatorRepository(repo_dir, keys_dir)
    state = state_path or repo_dir.resolve().parent / f"{repo_dir.resolve().name}.rollouts.json"
    store = None
    health = None
    if monitor_db:
        from edge_agent.fleet.monitor import open_store
        from edge_agent.fleet.rollout.health import MonitorHealth

        store = open_store(monitor_db)
        health = MonitorHealth.from_store(store)
    return RolloutController(repo, state, health), store


def _members(
    devices_file: Path | None, device: tuple[str, ...], monitor_db: str | None, model: str
) -> list[str]:
    members = set(device)
    if devices_file is not None:
        try:
            lines = devices_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"{devices_file}: cannot read the device list: {exc}") from None
        members.update(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    if not members and monitor_db:
        from edge_agent.fleet.monitor import open_store
        from edge_agent.fleet.monitor.queries import fleet_overview

        store = open_store(monitor_db)
        try:
            overview = fleet_overview(store, time.time())
        finally:
            store.close()
        members = {
            d["device_id"]
            for d in overview["devices"]
            if any(m["name"] == model for m in d["models"])
        }
    return sorted(members)


def _waves(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--waves {text!r}: use comma-separated percentages, e.g. 5,25,100"
        ) from None


@rollout.command("create")
@REPO
@KEYS
@STATE
@GROUP
@click.option("--model", type=_params.MODEL_NAME, required=True, help="Model name, as published.")
@click.option("--release", type=click.IntRange(min=1), required=True, help="Release to roll out.")
@click.option(
    "--previous",
    type=click.IntRange(min=1),
    help="Release to stay on / return to "
    "[default: the group's last completed rollout, else the newest older release].",
)
@click.option(
    "--waves",
    default=",".join(f"{wave:g}" for wave in DEFAULT_WAVES),
    show_default=True,
    help="Cumulative percentages of the group, ending at 100.",
)
@click.option(
    "--devices",
    "devices_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File with the group's device ids, one per line.",
)
@click.option(
    "--device", type=_params.DEVICE_ID, multiple=True, help="A device id of the group (repeatable)."
)
@click.option("--salt", help="Wave hash salt [default: the group name: same canaries each time].")
@click.option(
    "--retry",
    is_flag=True,
    help="Roll out a release that was rolled back in this group before (devices did not "
    "reject it; a release that failed on a device stays refused there).",
)
@click.option(
    "--max-error-rate",
    type=click.FloatRange(0, 1),
    default=_GATES.max_error_rate,
    show_default=True,
)
@click.option(
    "--max-latency-ratio",
    type=click.FloatRange(min=0.01),
    default=_GATES.max_latency_ratio,
    show_default=True,
    help="New p95 / previous release p95.",
)
@click.option("--max-latency-p95-ms", type=click.FloatRange(min=0), help="Absolute p95 limit.")
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=_GATES.min_agreement,
    show_default=True,
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0.01, 1),
    default=_GATES.min_coverage,
    show_default=True,
    help="Share of the opened waves that must run the release before advancing.",
)
@click.option(
    "--min-inferences",
    type=click.IntRange(min=0),
    default=_GATES.min_inferences,
    show_default=True,
)
@click.option(
    "--soak",
    type=click.FloatRange(min=0),
    default=_GATES.soak_s,
    show_default=True,
    help="Seconds each wave stays open before the next.",
)
@click.option(
    "--wave-timeout",
    type=click.FloatRange(min=1),
    default=_GATES.wave_timeout_s,
    show_default=True,
    help="Seconds a wave may wait for passing gates before the rollout is timed out "
    "(and rolled back).",
)
@MONITOR_DB
@click.option(
    "--follow/--no-follow",
    default=False,
    help="Keep stepping until the rollout ends (needs --monitor-db).",
)
@click.option("--poll", type=click.FloatRange(min=0.1), default=5.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the rollout as JSON.")
def create(
    repo_dir: Path,
    keys_dir: Path | None,
    state_path: Path | None,
    group: str,
    model: str,
    release: int,
    previous: int | None,
    waves: str,
    devices_file: Path | None,
    device: tuple[str, ...],
    salt: str | None,
    retry: bool,
    max_error_rate: float,
    max_latency_ratio: float,
    max_latency_p95_ms: float | None,
    min_agreement: float,
    min_coverage: float,
    min_inferences: int,
    soak: float,
    wave_timeout: float,
    monitor_db: str | None,
    follow: bool,
    poll: float,
    as_json: bool,
) -> None:
    """Start a rollout: sign the plan and open wave 1.

    Members come from --devices/--device, else from --monitor-db (every device the monitor
    knows that serves MODEL).
    """
    controller, store = _controller(repo_dir, keys_dir, state_path, monitor_db)
    try:
        thresholds = GateThresholds(
            max_error_rate=max_error_rate,
            max_latency_ratio=max_latency_ratio,
            max_latency_p95_ms=max_latency_p95_ms,
            min_agreement=min_agreement,
            min_coverage=min_coverage,
            min_inferences=min_inferences,
            soak_s=soak,
            wave_timeout_s=wave_timeout,
        )
        members = _members(devices_file, device, monitor_db, model)
        record = controller.create(
            group,
            model,
            release,
            members,
            waves=_waves(waves),
            previous=previous,
            thresholds=thresholds,
            salt=salt,
            retry=retry,
        )
        if follow:
            record = _follow(controller, group, poll, as_json)
        show_rollouts([record], controller, as_json)
    finally:
        if store is not None:
            store.close()


@rollout.command("follow")
@REPO
@KEYS
@STATE
@GROUP
@click.option("--monitor-db", required=True, help="The monitor's database URL.")
@click.option("--poll", type=click.FloatRange(min=0.1), default=5.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def follow_cmd(
    repo_dir: Path,
    keys_dir: Path | None,
    state_path: Path | None,
    group: str,
    monitor_db: str,
    poll: float,
    as_json: bool,
) -> None:
    """Run the controller for GROUP until its rollout ends (resumes after a restart)."""
    controller, store = _controller(repo_dir, keys_dir, state_path, monitor_db)
    try:
        show_rollouts([_follow(controller, group, poll, as_json)], controller, as_json)
    finally:
        store.close()


def _follow(controller: RolloutController, group: str, poll: float, quiet: bool) -> RolloutRecord:
    if controller.health is None:
        raise UpdateError("--follow needs --monitor-db (the gates read the monitor's data)")
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def on_step(record: RolloutRecord, decision: Decision) -> None:
        if not quiet:
            stamp = time.strftime("%H:%M:%S")
            click.echo(
                f"{stamp} {record.group}: wave {len(record.opened)}/{len(record.waves)} "
                f"{decision.action}: {decision.reason}"
            )

    try:
        return controller.follow(group, poll, stop, on_step)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@rollout.command("status")
@REPO
@KEYS
@STATE
@click.option("--group", type=_params.GROUP, help="Only this group.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (history and gate values too).")
def status(
    repo_dir: Path, keys_dir: Path | None, state_path: Path | None, group: str | None, as_json: bool
) -> None:
    """Show every group's rollout: waves, progress and the last gate values."""
    controller, _ = _controller(repo_dir, keys_dir, state_path)
    records = controller.all()
    if group is not None:
        records = [r for r in records if r.group == group]
        if not records:
            raise UpdateError(f"no rollout for group {group!r}")
    show_rollouts(records, controller, as_json)


def _simple(command: str, verb: str) -> click.Command:
    @rollout.command(command)
    @REPO
    @KEYS
    @STATE
    @GROUP
    @click.option("--reason", default=f"{verb} by the operator", show_default=True)
    @click.option("--json", "as_json", is_flag=True)
    def run(
        repo_dir: Path,
        keys_dir: Path | None,
        state_path: Path | None,
        group: str,
        reason: str,
        as_json: bool,
    ) -> None:
        controller, _ = _controller(repo_dir, keys_dir, state_path)
        record = getattr(controller, command)(group, reason)
        show_rollouts([record], controller, as_json)

    run.help = {
        "pause": "Hold the rollout at its current wave (a failing gate still rolls it back).",
        "resume": "Let a paused rollout advance again.",
        "abort": "Stop the rollout and send every device of the group back to the previous "
        "release (the release is withdrawn in this group until `create --retry`).",
    }[command]
    return run


pause = _simple("pause", "paused")
resume = _simple("resume", "resumed")
abort = _simple("abort", "aborted")


fleet.add_command(simulate)
