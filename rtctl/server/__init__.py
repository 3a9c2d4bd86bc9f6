"""The daemon: Socket.IO endpoint, admin HTTP API, health and metrics, lifecycle.

Only ``rtctl serve`` imports this package; the rest of the CLI never does.
"""
