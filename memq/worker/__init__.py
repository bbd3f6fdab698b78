"""The memq daemon: HTTP API, session manager and processing, on top of ``memq.queue``."""
