"""The inference worker: the child process of ``IsolatedBackend`` (serving/isolation.py).

It loads the model, says ``ready`` with the model's tensors, then answers requests until told
to stop or its pipe closes. Every message is a pickled tuple sent with ``send_bytes``:

- ``("shm", region, size, input_slots, output_start, dequantize)``: inputs lie in the shared
  region; the worker writes its outputs from ``output_start`` and answers ``("shm", slots)``,
  or ``("ok", outputs)`` (pickled arrays) when they do not fit or are not plain numbers.
- ``("run", inputs, dequantize)``: inputs pickled (tensors shared memory cannot carry).
- ``("close",)``.

Steady traffic repeats the same request bytes (same region, same shapes): the worker keeps the
arrays over the region from the last request and the reply bytes for the last output layout,
so a repeated request costs no decoding and no array construction on either side.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.config import RuntimeSettings
from edge_agent.serving.shm import WorkerMapping, decode, encode, layout, shm_ready, signature


def worker_main(conn: Connection, path: str, settings_json: str) -> None:
    """The child: load the model, then answer run requests until told to stop."""
    from edge_agent.runtime import load_model

    try:
        backend = load_model(Path(path), RuntimeSettings.model_validate_json(settings_json))
    except Exception as exc:
        conn.send_bytes(encode(("error", type(exc).__name__, str(exc))))
        return
    conn.send_bytes(
        encode(("ready", backend.format, backend.inputs, backend.outputs, backend.delegate))
    )
    mapping = WorkerMapping()
    last = b""
    inputs: dict[str, np.ndarray] = {}
    out_start, dequantize = 0, True
    out_key: Any = None
    out_views: list[np.ndarray] = []
    reply = b""
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            break
        try:
            if raw != last:
                request = decode(raw)
                last, out_key, out_views = b"", None, []
                if request[0] == "close":
                    break
                if request[0] == "run":
                    _, pickled, flag = request
                    conn.send_bytes(encode(("ok", backend.run(pickled, dequantize=flag))))
                    continue
                _, region, size, slots, out_start, dequantize = request
                if region != mapping.name:
                    inputs = {}  # no view may outlive the mapping it points into
                    mapping.attach(region, size)
                inputs = dict(zip((s.name for s in slots), mapping.views(slots), strict=True))
                last = raw
            outputs = backend.run(inputs, dequantize=dequantize)
            key = signature(outputs) if all(shm_ready(a) for a in outputs.values()) else None
            if key is None or key != out_key:
                slots, end = layout(outputs, out_start) if key is not None else ([], 0)
                if key is None or end > mapping.size:
                    out_key, out_views = None, []
                    conn.send_bytes(encode(("ok", outputs)))
                    continue
                out_key, out_views = key, mapping.views(slots)
                reply = encode(("shm", slots))
            for view, array in zip(out_views, outputs.values(), strict=True):
                np.copyto(view, array, casting="no")
            conn.send_bytes(reply)
        except Exception as exc:
            conn.send_bytes(encode(("error", type(exc).__name__, str(exc))))
    inputs, out_views = {}, []
    mapping.close()
    backend.close()
