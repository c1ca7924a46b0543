"""Publishing the signed rollout document: the controller's half of ``rollout_document``.

The ``rollouts`` role signs ``rollouts/<group>.json``; devices read it through
:mod:`edge_agent.delivery.following`.
"""

from __future__ import annotations

from tuf.api.metadata import TargetFile, Targets

from edge_agent._fs import write_atomically
from edge_agent.delivery.rollout_document import RolloutDocument, rollout_target_path
from edge_agent.errors import UpdateError
from edge_agent.trust.operator.repository import ROLLOUTS, OperatorRepository


def publish_rollout(repo: OperatorRepository, doc: RolloutDocument) -> TargetFile:
    """Sign ``doc`` with the ``rollouts`` role and publish it (new snapshot and timestamp).

    The document file is written (hash-prefixed, atomically) before the metadata that names it,
    so a device never finds signed metadata pointing at a missing file. Needs the online keys
    (rollouts, snapshot, timestamp) in the repository's key directory; UpdateError otherwise.
    """
    data = doc.to_bytes()
    target = TargetFile.from_data(doc.target_path, data, ["sha256"])
    hashed = target.get_prefixed_paths()[0]
    write_atomically(repo.targets_dir / hashed, data)
    with repo.edit_targets(ROLLOUTS) as md:
        md.signed.targets[doc.target_path] = target
    return target


def published_rollout(repo: OperatorRepository, group: str) -> RolloutDocument | None:
    """The document the repository currently signs for ``group`` (None if there is none)."""
    md = repo.load(ROLLOUTS, Targets)
    target = md.signed.targets.get(rollout_target_path(group))
    if target is None:
        return None
    path = repo.targets_dir / target.get_prefixed_paths()[0]
    try:
        data = path.read_bytes()
        target.verify_length_and_hashes(data)
    except OSError as exc:
        raise UpdateError(f"{path}: the published rollout document is unreadable: {exc}") from None
    except Exception as exc:
        raise UpdateError(f"{path}: does not match its signed metadata: {exc}") from None
    return RolloutDocument.from_bytes(data)
