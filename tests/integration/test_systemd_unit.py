"""The shipped units pass `systemd-analyze verify` and are locked down as far as their job
allows: `systemd-analyze security` exposure at most 2.5 (the agent with every device class's
drop-in), devices only from the class's drop-in."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edge-agent.service"


def test_unit_file_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is needed: apt-get install systemd (make test does it)")
    text = UNIT.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "ProtectSystem=strict" in text
    # verify checks that ExecStart exists: point it at this checkout's console script
    executable = Path(sys.executable).parent / "edge-agent"
    unit = tmp_path / "edge-agent.service"
    unit.write_text(text.replace("/opt/edge-agent/venv/bin/edge-agent", str(executable)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "edge-agent.service" in line
    ]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


SYSTEMD = UNIT.parent
DEVICE_CONFIGS = UNIT.parents[1] / "device_configs"
MAX_EXPOSURE = 2.5


def _analyze() -> str:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is needed: apt-get install systemd (make test does it)")
    return analyze


def _exposure(unit: Path) -> float:
    """`systemd-analyze security --offline=true`'s overall exposure (0 best, 10 worst)."""
    result = subprocess.run(
        [_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def _with_drop_in(unit_text: str, drop_in: Path) -> str:
    """The unit as systemd sees it with ``drop_in`` in its ``.service.d``."""
    body = drop_in.read_text().replace("[Service]\n", "")
    return unit_text.replace("[Install]", f"{body}\n[Install]")


def test_agent_unit_exposure_is_at_most_2_5_with_every_device_class(tmp_path):
    """Was 5.5 MEDIUM: no capability bounding set, any address family, all of /dev allowed by
    the unit itself, full /proc, writable-executable memory, no system-call filter."""
    text = UNIT.read_text()
    assert _exposure(UNIT) <= MAX_EXPOSURE
    assert "DeviceAllow=" not in text  # devices come only from the class's drop-in
    for needed in ("CapabilityBoundingSet=\n", "SystemCallFilter=", "ProtectProc=invisible"):
        assert needed in text, needed
    for drop_in in sorted((SYSTEMD / "device-classes").glob("*.conf")):
        unit = tmp_path / drop_in.stem / "edge-agent.service"
        unit.parent.mkdir()
        unit.write_text(_with_drop_in(text, drop_in))
        assert _exposure(unit) <= MAX_EXPOSURE, drop_in.name


def test_every_shipped_device_class_has_its_device_drop_in():
    classes = {p.stem for p in DEVICE_CONFIGS.glob("*.yaml")}
    drop_ins = {p.stem for p in (SYSTEMD / "device-classes").glob("*.conf")}
    assert classes == drop_ins
    for drop_in in (SYSTEMD / "device-classes").glob("*.conf"):
        lines = drop_in.read_text().splitlines()
        assert lines[lines.index("[Service]") + 1 :], drop_in.name
        assert all(
            line.startswith(("DeviceAllow=", "MemoryDenyWriteExecute=", "#"))
            for line in lines[lines.index("[Service]") + 1 :]
        ), drop_in.name


def test_operator_units_verify_log_in_as_their_own_user_and_are_locked_down(tmp_path):
    executable = Path(sys.executable).parent / "edge-agent"
    for name, user in (("registry", "registry"), ("monitor", "monitor")):
        shipped = SYSTEMD / f"edge-agent-{name}.service"
        text = shipped.read_text()
        assert f"--broker-username {user}" in text
        assert "--broker-password-file %d/broker-password" in text  # a systemd credential
        assert _exposure(shipped) <= MAX_EXPOSURE, name
        unit = tmp_path / shipped.name
        unit.write_text(text.replace("/opt/edge-agent/venv/bin/edge-agent", str(executable)))
        result = subprocess.run(
            [_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        problems = [
            line for line in (result.stdout + result.stderr).splitlines() if shipped.name in line
        ]
        assert result.returncode == 0 and problems == [], result.stdout + result.stderr
