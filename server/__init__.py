"""fadewatch.server: the ingest and read API."""
from fadewatch.server.app import create_app

__all__ = ["create_app"]
