"""Collapse alerts: rules, incremental detectors, the per-fingerprint state machine and delivery.

Nothing is imported here, so `fadewatch.server.models` can load the tables without the rest.
"""
