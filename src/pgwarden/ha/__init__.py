"""The pure HA core: ``decide(observation) -> Decision``; no I/O, clock or logging."""
