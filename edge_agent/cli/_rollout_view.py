"""How `edge-agent fleet rollout` prints rollouts: a rich table for people, JSON for scripts.

A release of several variants shows each variant's health (devices, error rate, p95) under
the gates; the JSON has it in ``last_gates.reading.variants``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table

from edge_agent.delivery.waves import devices_through
from edge_agent.fleet.rollout.controller import RolloutController
from edge_agent.fleet.rollout.state import RolloutRecord

__all__ = ["show_rollouts"]


def _record_json(record: RolloutRecord, controller: RolloutController) -> dict[str, Any]:
    data = asdict(record)
    data["wave_sizes"] = [len(w) for w in controller.waves_of(record)]
    data["document"] = json.loads(record.document().to_bytes())
    return data


def show_rollouts(
    records: list[RolloutRecord], controller: RolloutController, as_json: bool
) -> None:
    """Print ``records``: JSON (with wave sizes and the signed document) or a table."""
    if as_json:
        click.echo(json.dumps([_record_json(r, controller) for r in records], indent=2))
        return
    console = Console()
    table = Table(title="rollouts")
    for column in ("group", "rollout", "model", "release", "state", "waves", "progress", "gates"):
        table.add_column(column)
    for r in records:
        told = len(devices_through(r.members, r.waves, r.salt, len(r.opened)))
        if r.status == "completed":
            told = len(r.members)
        elif r.status in ("rolled_back", "aborted", "timed_out"):
            told = 0
        reading = r.last_gates.get("reading", {})
        on_release = int(reading.get("on_release", 0))
        bar = ProgressBar(total=max(len(r.members), 1), completed=on_release, width=20)
        progress = Table.grid(padding=(0, 1))
        progress.add_row(bar, f"{on_release}/{len(r.members)} on it, {told} told")
        verdict = r.last_gates.get("verdict", {})
        gates = ", ".join(f"{c['name']}={c['status']}" for c in verdict.get("checks", [])) or "-"
        gates = "\n".join([gates, *variant_lines(reading)])
        style = {
            "completed": "green",
            "rolled_back": "red",
            "timed_out": "red",
            "aborted": "yellow",
            "paused": "yellow",
        }.get(r.status, "cyan")
        table.add_row(
            r.group,
            r.id,
            r.model,
            f"{r.previous} -> {r.release}",
            f"[{style}]{r.status}[/]\n{r.reason}",
            f"{len(r.opened)}/{len(r.waves)} ({', '.join(f'{w:g}%' for w in r.waves)})",
            progress,
            gates,
        )
    console.print(table)


def variant_lines(reading: dict[str, Any]) -> list[str]:
    """One line of health per variant of the release the cohort runs (none for one variant)."""
    lines = []
    for name, part in sorted((reading.get("variants") or {}).items()):
        rate, p95 = part.get("error_rate"), part.get("latency_p95_ms")
        baseline = part.get("baseline_p95_ms")
        lines.append(
            f"{name}: {part.get('cohort', 0)} device(s), "
            f"errors {'-' if rate is None else f'{rate:.2%}'}, "
            f"p95 {'-' if p95 is None else f'{p95:.3g} ms'}"
            + (f" (was {baseline:.3g} ms)" if baseline is not None else "")
            + (
                f", {len(part['drift_alarm_devices'])} in drift alarm"
                if part.get("drift_alarm_devices")
                else ""
            )
        )
    return lines
