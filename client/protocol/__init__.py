"""fadewatch.protocol: what the hook, the server and the dashboard must agree on, written once.

numpy only (no pydantic, no HTTP): the server's schemas and settings, the dashboard and the
hook all import their rules and limits from here, never the other way round.
"""
