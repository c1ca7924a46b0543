"""An inconclusive shadow check (too little traffic) must not ban a release for good."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge_agent.delivery.store import ModelStore
from edge_agent.delivery.update import ShadowVerdict, UpdateManager, UpdateState
from tests.fakes.model_source import LocalModelSource

MODELS = Path(__file__).resolve().parents[3] / "models"


def _manager(
    store: ModelStore, release: int, verdicts: list[ShadowVerdict], published: list
) -> UpdateManager:
    return UpdateManager(
        store,
        lambda cancel: LocalModelSource(
            cancel, MODELS / "digits" / "digits_int8.onnx", release=release
        ),
        lambda _topic, payload: published.append(json.loads(payload)),
        "dev-1",
        shadow_check=lambda _model: verdicts.pop(0),
    )


def test_inconclusive_shadow_check_fails_this_update_and_the_next_one_retries(tmp_path: Path):
    """Regression: "not enough evidence" used to reject the release on the device forever.

    Seen with the agent: a shadow window without traffic refused release 2 as if it were bad,
    and no later update would ever install it ("never reinstalled").
    """
    published: list[dict[str, object]] = []
    with ModelStore(tmp_path / "store") as store:
        v1 = MODELS / "digits" / "digits_fp32.tflite"
        store.install("digits", 1, v1, {}, hashlib.sha256(v1.read_bytes()).hexdigest())
        store.activate("digits", 1)
        verdicts = [
            ShadowVerdict(False, "not enough evidence: 0 shadow inferences", conclusive=False),
            ShadowVerdict(True, "agrees on 100%"),
        ]
        first = _manager(store, 2, verdicts, published).update("digits")
        assert first.state is UpdateState.FAILED and "inconclusive" in first.reason
        assert "not enough evidence" in first.reason
        assert store.rejected("digits") == {}
        staged = store.staged("digits")
        assert staged is not None and staged.version == 2
        assert store.active("digits").version == 1  # type: ignore[union-attr]

        second = _manager(store, 2, verdicts, published).update("digits")
        assert second.state is UpdateState.ACTIVE, second.reason
        assert store.active("digits").version == 2  # type: ignore[union-attr]


def test_conclusive_refusal_still_rejects_for_good(tmp_path: Path):
    published: list[dict[str, object]] = []
    with ModelStore(tmp_path / "store") as store:
        verdicts = [ShadowVerdict(False, "agrees on 40%")]
        outcome = _manager(store, 1, verdicts, published).update("digits")
        assert outcome.state is UpdateState.FAILED and "refused" in outcome.reason
        assert 1 in store.rejected("digits")
