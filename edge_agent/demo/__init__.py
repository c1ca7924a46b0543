"""`edge-agent demo`: the whole system on one machine, with nothing installed beforehand."""
