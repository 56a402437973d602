"""HA rules: each a pure function from an Observation to a Decision, or None when it does not apply."""
