"""edge-agent: an on-device ML inference runtime for fleets of Linux edge devices."""

__version__ = "0.1.0"
