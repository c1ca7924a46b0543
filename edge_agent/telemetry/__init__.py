"""Telemetry: latency sketches, system sensors, drift profiles and detection, the outbox.

Modules, one concern each:

* :mod:`.profile` -- reference / window drift profiles (mergeable, versioned JSON), built
  from :mod:`.features` (what is measured per sample) and :mod:`.histogram` (fixed-edge,
  mergeable histograms);
* :mod:`.drift_stats` -- PSI, KS and Wasserstein on profile histograms (numpy only);
* :mod:`.drift` -- window comparison, alarm states with hysteresis, the off-path worker;
* :mod:`.latency` -- per model/delegate DDSketch latency and load counters (O(1) hot path);
* :mod:`.sensors` -- CPU, memory, disk, thermal, power supplies, hwmon rails, RPi throttling;
* :mod:`.power_policy` -- battery / temperature driven frame-rate and model-variant decisions;
* :mod:`.outbox` -- SQLite (WAL) store-and-forward queue, priorities, byte bound;
* :mod:`.publisher` -- drains the outbox to MQTT QoS 1 (paho-mqtt 2.x).
"""
