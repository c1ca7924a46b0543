"""The device-side decision: which release a verified rollout document assigns."""

from __future__ import annotations

import pytest

from edge_agent.delivery.following import plan_for_device, release_for_device
from edge_agent.delivery.rollout_document import RolloutDocument
from edge_agent.delivery.waves import partition
from edge_agent.errors import UpdateError

IDS = [f"d{i}" for i in range(200)]
NOW = 1_800_000_000.0


def doc(**changes: object) -> RolloutDocument:
    base = RolloutDocument(
        id="r1",
        group="lab",
        model="digits",
        release=3,
        previous=2,
        waves=(10.0, 50.0, 100.0),
        salt="lab",
        opened=(NOW - 60,),
    )
    return base.evolve(**changes)


def test_only_devices_of_open_waves_get_the_release() -> None:
    waves = partition(IDS, [10, 50, 100], "lab")
    d = doc()
    assert {release_for_device(d, x, NOW) for x in waves[0]} == {3}
    assert {release_for_device(d, x, NOW) for x in waves[1] + waves[2]} == {2}
    two = doc(opened=(NOW - 60, NOW - 1))
    assert {release_for_device(two, x, NOW) for x in waves[1]} == {3}


def test_a_wave_opened_in_the_future_is_not_open_yet() -> None:
    waves = partition(IDS, [10, 50, 100], "lab")
    later = doc(opened=(NOW + 3600,))
    assert {release_for_device(later, x, NOW) for x in waves[0]} == {2}


def test_completed_and_rolled_back_apply_to_everyone() -> None:
    assert {release_for_device(doc(state="completed"), x, NOW) for x in IDS} == {3}
    assert {release_for_device(doc(state="rolled_back"), x, NOW) for x in IDS} == {2}


def test_first_rollout_without_previous_leaves_later_waves_idle() -> None:
    waves = partition(IDS, [10, 50, 100], "lab")
    first = doc(previous=None)
    assert release_for_device(first, waves[2][0], NOW) is None
    plan = plan_for_device(first, waves[2][0], NOW, active=None)
    assert plan.action == "stay"


def test_plans() -> None:
    canary = partition(IDS, [10, 50, 100], "lab")[0][0]
    assert plan_for_device(doc(), canary, NOW, active=2).action == "install"
    assert plan_for_device(doc(), canary, NOW, active=3).action == "stay"
    rejected = plan_for_device(doc(), canary, NOW, active=2, rejected={3})
    assert rejected.action == "stay" and "rejected" in rejected.reason
    back = plan_for_device(doc(state="rolled_back", reason="error rate"), canary, NOW, active=3)
    assert (back.action, back.release, back.leaving) == ("roll_back", 2, 3)
    ahead = plan_for_device(doc(), IDS[-1], NOW, active=5)
    assert ahead.action == "stay"


def test_rolled_back_document_does_not_ban_a_release_that_passed_on_the_device() -> None:
    """Regression: a signed ``rolled_back`` document made the device reject the release for good.

    The rollback sends the canary back to the previous release, but the release is not added
    to what the device refused, so a later rollout of the same release installs it again.
    """
    canary = partition(IDS, [10, 50, 100], "lab")[0][0]
    withdrawn = doc(state="rolled_back", reason="error_rate: 0.3 > 0.02")
    back = plan_for_device(withdrawn, canary, NOW, active=3)
    assert back.action == "roll_back" and back.release == 2 and back.leaving == 3
    rejected: set[int] = set()  # what the agent refuses: only its own failures
    assert plan_for_device(withdrawn, canary, NOW, active=2, rejected=rejected).action == "stay"
    retried = doc(id="r2", opened=(NOW - 5,))
    again = plan_for_device(retried, canary, NOW, active=2, rejected=rejected)
    assert (again.action, again.release) == ("install", 3)


def test_a_release_that_failed_on_the_device_stays_refused_in_a_retried_rollout() -> None:
    """Only the device's own failure (shadow check, watch window) bans a release there."""
    canary = partition(IDS, [10, 50, 100], "lab")[0][0]
    retried = doc(id="r2", opened=(NOW - 5,))
    plan = plan_for_device(retried, canary, NOW, active=2, rejected={3})
    assert (plan.action, plan.release) == ("stay", 2)


def test_document_round_trips_canonically() -> None:
    d = doc()
    assert RolloutDocument.from_bytes(d.to_bytes()) == d
    assert d.to_bytes() == RolloutDocument.from_bytes(d.to_bytes()).to_bytes()
    assert d.target_path == "rollouts/lab.json"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"id": "x"}',
        b'{"id":"r","group":"lab","model":"digits","release":2,"previous":2,'
        b'"waves":[100],"salt":"lab"}',
        b'{"id":"r","group":"lab/..","model":"digits","release":2,"previous":1,'
        b'"waves":[100],"salt":"lab"}',
        b'{"id":"r","group":"lab","model":"digits","release":2,"previous":1,'
        b'"waves":[100],"salt":"lab","state":"yolo"}',
        b'{"id":"r","group":"lab","model":"digits","release":2,"previous":1,'
        b'"waves":[100],"salt":"lab","extra":1}',
        b"{" * 100000,
    ],
)
def test_garbage_documents_are_refused_clearly(payload: bytes) -> None:
    with pytest.raises(UpdateError):
        RolloutDocument.from_bytes(payload)
