"""Device-side delivery: the model store, the update state machine, following rollouts.

``store.py`` keeps content-addressed model files in staged / active / previous slots;
``update.py`` takes one release from "something new" to active (or rejected); ``following.py``
reads the signed rollout document (``rollout_document.py``) and picks this device's release by
its wave (``waves.py``). The operator's rollout controller imports the document and the waves
from here; nothing here imports the operator side.
"""

from __future__ import annotations

__all__: list[str] = []
