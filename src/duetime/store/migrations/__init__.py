"""Alembic migrations of the duetime schema (run through :mod:`duetime.store.migrate`)."""
