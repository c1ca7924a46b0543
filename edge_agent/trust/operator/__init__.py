"""The operator's TUF repository: keys, signing, publishing model packages. Never on a device.

:class:`OperatorRepository` (``repository.py``) owns the metadata of every role, keys live one
PEM file each (``keys.py``), and :func:`add_model` publishes a package (``publish.py``).
"""

from __future__ import annotations

from edge_agent.trust.operator.publish import add_model, add_release, repo_status
from edge_agent.trust.operator.repository import OperatorRepository, RoleKeys

__all__ = ["OperatorRepository", "RoleKeys", "add_model", "add_release", "repo_status"]
