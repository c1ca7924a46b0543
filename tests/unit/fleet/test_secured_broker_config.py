"""The demo's broker config is deploy/mosquitto.conf with only its paths and ports rewritten."""

from __future__ import annotations

from pathlib import Path

from edge_agent.demo.secured_broker import deploy_dir, shipped_config


def test_only_paths_and_ports_of_the_shipped_config_are_rewritten(tmp_path: Path) -> None:
    shipped = (deploy_dir() / "mosquitto.conf").read_text()
    ours = shipped_config(tmp_path, 1234, 5678)
    assert "/etc/mosquitto/" not in ours and "/var/lib/mosquitto/" not in ours
    assert f"password_file {tmp_path}/etc/passwd" in ours
    assert f"acl_file {tmp_path}/etc/edge-agent.acl" in ours
    assert "listener 1234 127.0.0.1" in ours and "\nlistener 5678\n" in ours
    rewritten = ("/etc/mosquitto/", "/var/lib/mosquitto/", "log_dest syslog", "listener ")
    kept = [line for line in shipped.splitlines() if not any(r in line for r in rewritten)]
    assert "allow_anonymous false" in kept and "use_username_as_clientid true" in kept
    for line in kept:  # authentication, client-id binding, TLS version, limits: as shipped
        assert line in ours.splitlines(), line
