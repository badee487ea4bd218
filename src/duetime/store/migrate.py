"""Schema migrations: Alembic driven programmatically (no alembic.ini needed at runtime)."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from duetime.errors import SchemaOutdatedError
from duetime.store.sqlalchemy import (
    SQLITE_BEGIN_ATTEMPTS,
    SQLITE_BEGIN_BACKOFF_SECONDS,
    WRITE_OPTION,
    _is_locked,
    create_store_engine,
)
from duetime.store.tables import VERSION_TABLE

#: Where the migration scripts live, inside the package.
SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))

#: Serialises concurrent ``duetime migrate`` runs on PostgreSQL (arbitrary constant key).
_PG_MIGRATION_LOCK_KEY = 727_100_001


def _config(script_location: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location or SCRIPT_LOCATION)
    return config


@functools.lru_cache(maxsize=8)
def head_revision(script_location: str | None = None) -> str:
    """Return the newest revision this duetime knows."""
    head = ScriptDirectory.from_config(_config(script_location)).get_current_head()
    if head is None:  # pragma: no cover - the package always ships a revision
        raise RuntimeError("no duetime migrations found")
    return head


def _revision_of(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def current_revision(url: str) -> str | None:
    """Return the revision the database at ``url`` is at (None for an empty database)."""
    engine = create_store_engine(url)
    try:
        return _revision_of(engine)
    finally:
        engine.dispose()


def upgrade_database(url: str, *, script_location: str | None = None) -> str:
    """Create or migrate the database at ``url`` to the newest revision; idempotent.

    On SQLite, processes migrating one new file at once can still meet "database is locked"
    (switching a fresh file to WAL cannot wait on the busy handler): the whole upgrade is
    rolled back and retried with backoff, which is safe because it is idempotent.
    """
    for attempt in range(SQLITE_BEGIN_ATTEMPTS):
        try:
            return _upgrade_once(url, script_location)
        except sa.exc.OperationalError as exc:
            if not _is_locked(exc) or attempt == SQLITE_BEGIN_ATTEMPTS - 1:
                raise
            time.sleep(SQLITE_BEGIN_BACKOFF_SECONDS * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _upgrade_once(url: str, script_location: str | None) -> str:
    engine = create_store_engine(url)
    config = _config(script_location)
    try:
        # SQLite: BEGIN IMMEDIATE, so concurrent migrations queue on busy_timeout instead of
        # failing "database is locked" when their deferred read turns into a write.
        with engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    lock = f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK_KEY})"
                    conn.execute(sa.text(lock))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        return head_revision(script_location)
    finally:
        engine.dispose()


@functools.lru_cache(maxsize=8)
def _known_revisions(script_location: str | None) -> frozenset[str]:
    script = ScriptDirectory.from_config(_config(script_location))
    return frozenset(rev.revision for rev in script.walk_revisions())


def check_engine_schema(engine: sa.Engine, *, script_location: str | None = None) -> None:
    """Raise :class:`SchemaOutdatedError` unless the database is at the newest revision."""
    where = engine.url.render_as_string(hide_password=True)
    if _missing_sqlite_file(engine.url):
        raise SchemaOutdatedError(
            f"there is no database file at {where}; run `duetime init` to create it"
        )
    current = _revision_of(engine)
    head = head_revision(script_location)
    if current == head:
        return
    if current is None:
        raise SchemaOutdatedError(
            f"the database at {where} has no duetime schema; "
            "run `duetime init` (or `duetime migrate`) to create it"
        )
    if current not in _known_revisions(script_location):
        raise SchemaOutdatedError(
            f"the database at {where} is at revision {current}, newer than this duetime "
            f"knows (head {head}); upgrade duetime"
        )
    raise SchemaOutdatedError(
        f"the database at {where} is at revision {current}, older than {head}; "
        "run `duetime migrate` to upgrade it"
    )


def _missing_sqlite_file(url: sa.URL) -> bool:
    """True for a SQLite file URL whose file does not exist (checking must not create it)."""
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return False
    return not Path(database).exists()


def check_schema(url: str, *, script_location: str | None = None) -> None:
    """Raise :class:`SchemaOutdatedError` unless the database at ``url`` is current."""
    engine = create_store_engine(url)
    try:
        check_engine_schema(engine, script_location=script_location)
    finally:
        engine.dispose()
