"""The update state machine: transitions, time limits, cancellation, failure never blocks."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from edge_agent.delivery.store import ModelStore
from edge_agent.delivery.update import ShadowVerdict, UpdateLimits, UpdateManager, UpdateState
from edge_agent.errors import UpdateError
from tests.fakes.model_source import LocalModelSource
from tests.fixtures.wait import wait_for

MODELS = Path(__file__).resolve().parents[3] / "models"
FP32 = MODELS / "digits" / "digits_fp32.tflite"
INT8 = MODELS / "digits" / "digits_int8.onnx"


def manager(tmp_path: Path, published: list, **source_options) -> UpdateManager:
    options = dict(source_options)
    limits = options.pop("limits", UpdateLimits())
    shadow = options.pop("shadow_check", None)
    clock = options.pop("clock", time.time)
    extra = {"shadow_check": shadow} if shadow else {}
    return UpdateManager(
        ModelStore(tmp_path / "store"),
        lambda cancel: LocalModelSource(cancel, **({"model": FP32} | options)),
        lambda topic, payload: published.append((topic, json.loads(payload))),
        "dev-1",
        limits=limits,
        clock=clock,
        **extra,
    )


def test_transitions_are_published_in_order_on_the_rollout_topic(tmp_path: Path):
    published: list = []
    m = manager(tmp_path, published)
    assert m.update("digits").state is UpdateState.ACTIVE
    assert [p["state"] for _, p in published] == ["downloading", "verified", "staged", "active"]
    assert {t for t, _ in published} == {"ea/v1/dev-1/rollout"}
    assert all(p["model"] == "digits" and p["version"] == 1 for _, p in published)
    assert m.update("digits").reason == "up to date" and len(published) == 4
    m.store.close()


def test_download_over_its_time_limit_fails_and_the_next_update_succeeds(tmp_path: Path):
    published: list = []
    m = manager(tmp_path, published, hang_download=True, limits=UpdateLimits(download_s=0.2))
    outcome = m.update("digits")
    assert outcome.state is UpdateState.FAILED and "longer than 0.2 s" in outcome.reason
    assert m.store.active("digits") is None
    m.source_factory = lambda cancel: LocalModelSource(cancel, FP32)
    assert m.update("digits").state is UpdateState.ACTIVE  # a failure never blocks the next
    m.store.close()


class HeldSource(LocalModelSource):
    """Downloads once ``held`` is cleared (the link budget's window opening), unless cancelled."""

    def __init__(self, cancel: threading.Event, held: threading.Event) -> None:
        super().__init__(cancel, FP32)
        self.held = held

    def download(self, release, progress=None, **options):  # type: ignore[no-untyped-def]
        while self.held.is_set():
            if self.cancel.wait(0.02):
                raise UpdateError("download interrupted")
        return super().download(release, progress, **options)


def test_time_paused_outside_the_link_windows_does_not_count_against_the_download_limit(
    tmp_path: Path,
):
    """Regression: the download limit ran on the wall clock, so a link window closing
    mid-download failed the update after ``download_s`` although the transfer was only
    waiting for the next window (whose own deadline excludes that time)."""
    published: list = []
    held = threading.Event()
    held.set()
    m = UpdateManager(
        ModelStore(tmp_path / "store"),
        lambda cancel: HeldSource(cancel, held),
        lambda topic, payload: published.append(json.loads(payload)),
        "dev-1",
        limits=UpdateLimits(download_s=0.3),
        link_paused=held.is_set,
    )
    result: list = []
    worker = threading.Thread(target=lambda: result.append(m.update("digits")))
    worker.start()
    time.sleep(1.0)  # paused for over three times the limit
    assert worker.is_alive() and [p["state"] for p in published] == ["downloading"]
    held.clear()  # the window opens
    worker.join(5)
    assert result[0].state is UpdateState.ACTIVE, result[0].reason
    m.store.close()


def test_cancel_stops_a_running_update(tmp_path: Path):
    published: list = []
    m = manager(tmp_path, published, hang_download=True)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(m.update("digits")))
    worker.start()
    # cancel a running update, not one yet to start (which would begin with a fresh token)
    wait_for(lambda: [p["state"] for _, p in published] == ["downloading"], 5, "the download")
    m.cancel()
    worker.join(5)
    assert result and result[0].state is UpdateState.FAILED
    assert "cancelled" in result[0].reason or "interrupted" in result[0].reason
    m.store.close()


def test_a_hanging_shadow_check_is_bounded_and_rejects(tmp_path: Path):
    published: list = []

    def hang(_model):
        time.sleep(5)
        return ShadowVerdict(True)

    m = manager(tmp_path, published, shadow_check=hang, limits=UpdateLimits(shadow_s=0.2))
    started = time.monotonic()
    outcome = m.update("digits")
    assert time.monotonic() - started < 2
    assert outcome.state is UpdateState.FAILED and "longer than 0.2 s" in outcome.reason
    assert m.store.rejected("digits")
    m.store.close()


def test_a_raising_shadow_check_is_a_refusal_not_a_crash(tmp_path: Path):
    published: list = []

    def boom(_model):
        raise RuntimeError("sample buffer empty")

    m = manager(tmp_path, published, shadow_check=boom)
    outcome = m.update("digits")
    assert outcome.state is UpdateState.FAILED and "sample buffer empty" in outcome.reason
    m.store.close()


def test_refuses_to_install_on_a_1970_clock(tmp_path: Path):
    published: list = []
    m = manager(tmp_path, published, clock=lambda: 0.0)
    outcome = m.update("digits")
    assert outcome.state is UpdateState.FAILED and "1970" in outcome.reason
    assert "NTP" in outcome.reason and m.store.active("digits") is None
    assert published[-1][1]["state"] == "failed"
    m.store.close()


def test_roll_back_restores_previous_and_rejects_the_bad_version(tmp_path: Path):
    published: list = []
    m = manager(tmp_path, published)
    assert m.update("digits").state is UpdateState.ACTIVE
    m.source_factory = lambda cancel: LocalModelSource(cancel, INT8, release=2)
    assert m.update("digits").state is UpdateState.ACTIVE
    outcome = m.roll_back("digits", "error rate 12% after activation")
    assert outcome.state is UpdateState.ROLLED_BACK and outcome.version == 2
    assert m.store.active("digits").version == 1  # type: ignore[union-attr]
    assert 2 in m.store.rejected("digits")
    m.store.close()


def test_update_history_stays_bounded_when_every_check_fails_for_years(tmp_path: Path):
    """Regression (issue 12, item 7): ``UpdateManager.history`` was a list that grew by every
    transition for the life of the agent; a registry that failed each check grew it forever."""
    from edge_agent.delivery.update import HISTORY_LIMIT

    published: list = []
    m = manager(tmp_path, published, fail_refresh="registry unreachable")
    for _ in range(HISTORY_LIMIT + 40):
        assert m.update("digits").state is UpdateState.FAILED
    assert len(m.history) == HISTORY_LIMIT
    assert m.history[-1].state is UpdateState.FAILED
    assert len(published) >= HISTORY_LIMIT + 40  # every transition was still reported
    m.store.close()
