"""Connection routing: the HAProxy configuration that sends writes to the primary and reads to standbys."""
