"""The controller against a real signed repository, with scripted gate readings and clock."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from tuf.api.metadata import TargetFile

from edge_agent.delivery.rollout_document import rollout_target_path
from edge_agent.errors import UpdateError
from edge_agent.fleet.rollout.controller import RolloutController
from edge_agent.fleet.rollout.gates import GateThresholds, WaveReading
from edge_agent.fleet.rollout.publish import published_rollout
from edge_agent.trust.operator.repository import ROLLOUTS, OperatorRepository
from edge_agent.trust.targets import model_custom, model_target_path

IDS = [f"dev-{i}" for i in range(100)]
LIMITS = GateThresholds(min_inferences=10, soak_s=10, wave_timeout_s=100)


class ScriptedHealth:
    """A HealthSource whose readings the test sets; records the cohorts asked about."""

    def __init__(self) -> None:
        self.error_rate: float | None = 0.0
        self.cohorts: list[int] = []
        self.groups: list[int] = []
        self.baseline: float | None = None

    def reading(
        self,
        model: str,
        release: int,
        previous: int | None,
        cohort: Sequence[str],
        window_s: float,
        group: Sequence[str] = (),
    ) -> WaveReading:
        self.cohorts.append(len(cohort))
        self.groups.append(len(group))
        if self.error_rate is None:
            return WaveReading(cohort=len(cohort))
        return WaveReading(
            cohort=len(cohort),
            on_release=len(cohort),
            online=len(cohort),
            inferences=100,
            errors=int(100 * self.error_rate),
            error_rate=self.error_rate,
            latency_p95_ms=5.0,
            baseline_p95_ms=self.baseline,
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def sign_release(repo: OperatorRepository, release: int) -> None:
    """A signed model target (metadata only is enough for the controller)."""
    data = f"model {release}".encode()
    path = model_target_path("digits", release, "digits.onnx")
    target = TargetFile.from_data(path, data, ["sha256"])
    target.unrecognized_fields["custom"] = model_custom("digits", release, {"version": "1"})
    with repo.edit_targets() as md:
        md.signed.targets[path] = target


@pytest.fixture
def setup(tmp_path: Path) -> tuple[OperatorRepository, ScriptedHealth, Clock, Path]:
    repo = OperatorRepository.init(tmp_path / "repo", tmp_path / "keys")
    for release in (1, 2, 3):
        sign_release(repo, release)
    return repo, ScriptedHealth(), Clock(), tmp_path / "state" / "rollouts.json"


def test_waves_open_in_order_and_the_document_follows(setup: tuple) -> None:  # type: ignore[type-arg]
    repo, health, clock, state = setup
    controller = RolloutController(repo, state, health, clock=clock)
    record = controller.create("lab", "digits", 2, IDS, waves=(10, 50, 100), thresholds=LIMITS)
    assert record.previous == 1
    doc = published_rollout(repo, "lab")
    assert doc is not None and doc.release == 2 and len(doc.opened) == 1
    assert controller.step("lab").action == "wait"  # soaking
    clock.now += 11
    assert controller.step("lab").action == "advance"
    clock.now += 11
    assert controller.step("lab").action == "advance"
    clock.now += 11
    assert controller.step("lab").action == "complete"
    done = published_rollout(repo, "lab")
    assert done is not None and done.state == "completed" and len(done.opened) == 3
    sizes = [len(w) for w in controller.waves_of(controller.get("lab"))]  # type: ignore[arg-type]
    assert health.cohorts[-1] == 100 and health.cohorts[1] == sizes[0]
    # The next rollout of the group starts from the completed release.
    assert controller.create("lab", "digits", 3, IDS, thresholds=LIMITS).previous == 2


def test_failing_gate_rolls_back_and_withdraws_the_release(setup: tuple) -> None:  # type: ignore[type-arg]
    repo, health, clock, state = setup
    controller = RolloutController(repo, state, health, clock=clock)
    controller.create("lab", "digits", 3, IDS, previous=2, thresholds=LIMITS)
    health.error_rate = 0.5
    clock.now += 1
    assert controller.step("lab").action == "roll_back"
    doc = published_rollout(repo, "lab")
    assert doc is not None and doc.state == "rolled_back" and doc.previous == 2
    with pytest.raises(UpdateError, match="rolled back in group"):
        controller.create("lab", "digits", 3, IDS, thresholds=LIMITS)


def test_a_rolled_back_release_can_be_retried_on_purpose(setup: tuple) -> None:  # type: ignore[type-arg]
    """Devices no longer reject a release for a fleet rollback, so the operator can roll it
    out again once the cause is understood; without ``retry`` it stays refused."""
    repo, health, clock, state = setup
    controller = RolloutController(repo, state, health, clock=clock)
    controller.create("lab", "digits", 3, IDS, previous=2, thresholds=LIMITS)
    health.error_rate = 0.5
    clock.now += 1
    assert controller.step("lab").action == "roll_back"
    with pytest.raises(UpdateError, match="--retry"):
        controller.create("lab", "digits", 3, IDS, thresholds=LIMITS)
    health.error_rate = 0.0
    clock.now += 1
    retried = controller.create("lab", "digits", 3, IDS, thresholds=LIMITS, retry=True)
    assert retried.previous == 2 and retried.status == "rolling"
    doc = published_rollout(repo, "lab")
    assert doc is not None and doc.state == "rolling" and doc.id == retried.id


def test_gates_read_the_cohort_and_the_group_and_keep_the_group_baseline(setup: tuple) -> None:  # type: ignore[type-arg]
    """The source gets the group for the previous release's baseline; when the last wave has
    moved the whole group off it (no baseline any more), the one measured earlier is kept."""
    repo, health, clock, state = setup
    controller = RolloutController(repo, state, health, clock=clock)
    controller.create("lab", "digits", 2, IDS, waves=(50, 100), thresholds=LIMITS)
    health.baseline = 4.0
    clock.now += 11
    assert controller.step("lab").action == "advance"
    assert health.groups == [100]
    health.baseline = None
    clock.now += 1
    controller.step("lab")
    reading = controller.get("lab").last_gates["reading"]  # type: ignore[union-attr]
    assert reading["baseline_p95_ms"] == 4.0


def test_timeout_ends_a_rollout_without_data(setup: tuple) -> None:  # type: ignore[type-arg]
    repo, health, clock, state = setup
    health.error_rate = None
    controller = RolloutController(repo, state, health, clock=clock)
    controller.create("lab", "digits", 2, IDS, thresholds=LIMITS)
    clock.now += 50
    assert controller.step("lab").action == "wait"
    clock.now += 51
    assert controller.step("lab").action == "time_out"
    assert controller.get("lab").status == "timed_out"  # type: ignore[union-attr]


def test_pause_resume_abort(setup: tuple) -> None:  # type: ignore[type-arg]
    repo, health, clock, state = setup
    controller = RolloutController(repo, state, health, clock=clock)
    controller.create("lab", "digits", 2, IDS, thresholds=LIMITS)
    controller.pause("lab")
    assert published_rollout(repo, "lab").state == "paused"  # type: ignore[union-attr]
    clock.now += 1000
    assert controller.step("lab").action == "wait"
    with pytest.raises(UpdateError, match="cannot make it paused"):
        controller.pause("lab")
    controller.resume("lab")
    assert controller.step("lab").action == "wait"  # the soak restarts at the resume
    clock.now += 11
    assert controller.step("lab").action == "advance"
    controller.abort("lab")
    assert published_rollout(repo, "lab").state == "rolled_back"  # type: ignore[union-attr]
    with pytest.raises(UpdateError, match="aborted"):
        controller.resume("lab")


def test_restarted_controller_resumes_and_republishes_a_lost_document(setup: tuple) -> None:  # type: ignore[type-arg]
    """Regression guard: a controller killed between saving its state and signing the document
    must not leave devices on a document older than the state."""
    repo, health, clock, state = setup
    RolloutController(repo, state, health, clock=clock).create("lab", "digits", 2, IDS)
    # Simulate the crash: the signed document is withdrawn from the repository.
    with repo.edit_targets(ROLLOUTS) as md:
        del md.signed.targets[rollout_target_path("lab")]
    assert published_rollout(repo, "lab") is None
    restarted = RolloutController(repo, state, health, clock=clock)
    assert restarted.get("lab").status == "rolling"  # type: ignore[union-attr]
    restarted.step("lab")
    doc = published_rollout(repo, "lab")
    assert doc is not None and doc.release == 2


def test_state_file_is_json_and_garbage_is_refused(setup: tuple) -> None:  # type: ignore[type-arg]
    repo, health, clock, state = setup
    controller = RolloutController(repo, state, health, clock=clock)
    controller.create("lab", "digits", 2, IDS)
    assert json.loads(state.read_text())["rollouts"]["lab"]["release"] == 2
    state.write_text("{ truncated")
    with pytest.raises(UpdateError, match="unreadable rollout controller state"):
        controller.get("lab")


def test_create_refuses_bad_requests(setup: tuple) -> None:  # type: ignore[type-arg]
    repo, health, clock, state = setup
    controller = RolloutController(repo, state, health, clock=clock)
    with pytest.raises(UpdateError, match="not signed"):
        controller.create("lab", "digits", 9, IDS)
    with pytest.raises(UpdateError, match="no devices"):
        controller.create("lab", "digits", 2, [])
    with pytest.raises(UpdateError, match="invalid device group"):
        controller.create("../x", "digits", 2, IDS)
    controller.create("lab", "digits", 2, IDS)
    with pytest.raises(UpdateError, match="already has rollout"):
        controller.create("lab", "digits", 3, IDS)


def test_controller_loads_without_the_monitor_package() -> None:
    """The controller needs only the HealthSource protocol; the monitor (dashboard server,
    ingest, store) is loaded by whoever wires MonitorHealth in, not by the controller."""
    code = (
        "import sys, edge_agent.fleet.rollout.controller, edge_agent.fleet.rollout; "
        "print(sorted(m for m in sys.modules if m.startswith('edge_agent.fleet.monitor')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_each_variant_keeps_the_baseline_measured_before_its_devices_left_the_release() -> None:
    """The last wave moves every device of a variant off the previous release: its latency is
    judged against the variant's baseline measured by the earlier waves, not left unjudged."""
    from edge_agent.fleet.rollout.controller import _with_known_baselines

    reading = WaveReading(
        cohort=2,
        variants=(
            ("fp16.onnx", WaveReading(cohort=1, latency_p95_ms=5.0)),
            ("int8.tflite", WaveReading(cohort=1, latency_p95_ms=9.0, baseline_p95_ms=8.5)),
        ),
    )
    last = {
        "baseline_p95_ms": 7.0,
        "variants": {"fp16.onnx": {"baseline_p95_ms": 2.0}, "int8.tflite": {"baseline_p95_ms": 9}},
    }
    filled = _with_known_baselines(reading, last)
    assert filled.baseline_p95_ms == 7.0
    parts = dict(filled.variants)
    assert parts["fp16.onnx"].baseline_p95_ms == 2.0
    assert parts["int8.tflite"].baseline_p95_ms == 8.5  # a fresh baseline wins
