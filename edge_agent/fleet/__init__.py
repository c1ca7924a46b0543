"""Operator side of the fleet: what runs on the operator's hosts, never on a device.

* :mod:`.registry` -- the registry server: serves the signed TUF repository over MQTT;
* :mod:`.monitor` -- the central monitor: ingest, store, alerts, dashboard, JSON API, metrics;
* :mod:`.rollout` -- the rollout controller: signed wave plans, health gates, rollback (it reads
  health through a ``HealthSource``, so it loads without the monitor);
* :mod:`.simulator` -- many light simulated devices in one process, for tests and benchmarks.

Nothing on the device side imports this package (an import-linter contract checks it); what a
device shares with these modules (the rollout document, waves, topics, wire documents) lives on
the device side. This ``__init__`` imports nothing, so loading one subpackage loads no other.
"""
