"""Trust: python-tuf on both sides of the wire. MQTT carries bytes; only TUF decides.

``trust/device/`` is the device's TUF client over MQTT (``DeviceUpdater``, its fetcher and
resumable, crash-safe downloads). ``trust/operator/`` is the operator's repository tooling
(init, sign, rotate keys, publish model packages). Both share how models appear as targets
(``targets.py``) and the chunk protocol (``protocol.py``). This package imports neither side,
so a device never loads the signing tools.
"""

from __future__ import annotations

__all__: list[str] = []
