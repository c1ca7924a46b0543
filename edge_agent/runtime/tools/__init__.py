"""Runtime tools behind `edge-agent doctor`, `infer` and `bench`: inputs, benchmark, diagnosis."""

from __future__ import annotations

__all__: list[str] = []
