"""fadewatch.server: the ingest and read API (FastAPI), its storage and its alerts.

Importing this package loads nothing: ``fadewatch.server.app.create_app`` builds the web
application, and pure modules (blocks, downsample, schemas, ...) import without it.
"""
