"""Operator side: the registry server (and, later, the rollout controller and monitor)."""
