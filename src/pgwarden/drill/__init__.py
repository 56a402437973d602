"""Failover drills: a writer through the router, and what it measured."""
