"""The agent's process: its cycle on a thread, the REST API, the signals (above agent/ and api/)."""
