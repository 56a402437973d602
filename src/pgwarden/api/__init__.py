"""The REST API: health checks for HAProxy, status, and operations."""
