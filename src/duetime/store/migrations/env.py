"""Alembic environment: runs on the connection :mod:`duetime.store.migrate` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from duetime.store.tables import VERSION_TABLE, metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through duetime.store.migrate or `duetime migrate`")
    _run(connection)


_main()
