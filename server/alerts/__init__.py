"""Collapse alerts, in two halves that meet at the notification outbox table.

    evaluation/   rules, incremental detectors and the per-fingerprint state machine, run on
                  newly stored steps by the ingest service; writes alert states, events and
                  outbox rows in the ingest transaction
    delivery/     what a notification says, and the worker that drains the outbox to Slack
                  and signed webhooks with retries (at-least-once)
    models.py     the alerting tables;  schemas.py  the API models

Nothing is imported here, so `fadewatch.server.models` can load the tables without the rest.
"""
