"""Storage: SQL tables, migrations and the Store implementation (SQLite and PostgreSQL)."""
