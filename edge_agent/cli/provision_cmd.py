"""`edge-agent fleet provision` and `fleet revoke`: a device's credentials in, and out again.

The work is in :mod:`edge_agent.fleet.provision`; this module only turns options into a
request and says what to do next (copy the directory onto the device, reload the broker).
"""

from __future__ import annotations

from pathlib import Path

import click

from edge_agent.cli import _params
from edge_agent.fleet.provision import ProvisionRequest, provision, revoke

_PASSWD = click.option(
    "--passwd",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The broker's password file (password_file in mosquitto.conf), e.g. "
    "/etc/mosquitto/passwd.",
)


@click.command("provision")
@click.argument("device_id", type=_params.DEVICE_ID)
@_PASSWD
@click.option(
    "--root",
    "root_json",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The repository's root.json: the device's trust anchor.",
)
@click.option(
    "--device-broker",
    "broker_url",
    required=True,
    help="The broker URL written into agent.yaml, as devices reach it: mqtts://HOST:8883 "
    "(this command itself talks to no broker).",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The CA that signed the broker's certificate (copied as ca.crt).",
)
@click.option("--group", type=_params.GROUP, help="The device's rollout group.")
@click.option(
    "--model",
    "models",
    type=_params.MODEL_NAME,
    multiple=True,
    help="A model to follow from the registry (repeatable).",
)
@click.option("--device", default="auto", show_default=True, help="Device config (class).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("provisioned"),
    show_default=True,
    help="Where the device's directory (OUT/DEVICE_ID) is made.",
)
@click.option(
    "--install-dir",
    type=click.Path(path_type=Path),
    default=Path("/etc/edge-agent"),
    show_default=True,
    help="Where the directory's files go on the device (the paths agent.yaml names).",
)
@click.option(
    "--rotate", is_flag=True, help="Replace the device's existing credential with a new one."
)
def provision_cmd(
    device_id: str,
    passwd: Path,
    root_json: Path,
    broker_url: str,
    ca_file: Path | None,
    group: str | None,
    models: tuple[str, ...],
    device: str,
    out_dir: Path,
    install_dir: Path,
    rotate: bool,
) -> None:
    """Make what DEVICE_ID needs to join the site, and add its broker credential.

    OUT/DEVICE_ID gets broker-password (a random secret), root.json, ca.crt and agent.yaml;
    PASSWD gets the device's entry. A device that already has a credential is refused unless
    --rotate. Reload the broker afterwards (systemctl reload mosquitto).
    """
    directory = provision(
        ProvisionRequest(
            device_id=device_id,
            out_dir=out_dir,
            passwd=passwd,
            root_json=root_json,
            broker_url=broker_url,
            ca_file=ca_file,
            group=group,
            models=models,
            device=device,
            install_dir=install_dir,
            rotate=rotate,
        )
    )
    click.echo(f"{device_id}: {'rotated' if rotate else 'provisioned'} in {directory}")
    click.echo(f"  copy {directory}/* to {install_dir}/ on the device (keep broker-password 0600)")
    click.echo("  then reload the broker: systemctl reload mosquitto")


@click.command("revoke")
@click.argument("device_id", type=_params.DEVICE_ID)
@_PASSWD
def revoke_cmd(device_id: str, passwd: Path) -> None:
    """Remove DEVICE_ID's broker credential; a broker reload disconnects and refuses it."""
    revoke(device_id, passwd)
    click.echo(f"{device_id}: revoked in {passwd}; now: systemctl reload mosquitto")
