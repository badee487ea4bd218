"""Migrations: empty/older databases are refused by name, upgrades are idempotent."""

from __future__ import annotations

import contextlib
import importlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from duetime.clock import FakeClock
from duetime.errors import SchemaOutdatedError
from duetime.store import migrate
from duetime.store.sqlalchemy import SQLAlchemyStore, create_store_engine
from duetime.store.tables import VERSION_TABLE, metadata

EXTRA_REVISION = '''"""A later test-only revision."""
revision = "9999_test_later"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no duetime schema) of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin_url = request.getfixturevalue("postgres_url")
    admin = sa.create_engine(
        sa.make_url(admin_url).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    name = f"duetime_m_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def later_scripts(tmp_path: Path) -> str:
    """A copy of the package's migrations plus one later revision (a 'newer duetime')."""
    target = tmp_path / "migrations"
    shutil.copytree(migrate.SCRIPT_LOCATION, target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "versions" / "9999_test_later.py").write_text(
        EXTRA_REVISION.format(head=migrate.head_revision())
    )
    return str(target)


def test_first_revision_has_a_descriptive_name() -> None:
    script = ScriptDirectory.from_config(migrate._config())
    assert script.get_base() == "0001_create_duetime_tables"
    assert migrate.head_revision() in {rev.revision for rev in script.walk_revisions()}


def test_empty_database_is_refused_naming_init(empty_url: str) -> None:
    store = SQLAlchemyStore(empty_url, clock=FakeClock())
    with pytest.raises(SchemaOutdatedError, match="duetime init"):
        store.check_schema()
    store.dispose()
    assert migrate.current_revision(empty_url) is None


def test_upgrade_creates_schema_and_is_idempotent(empty_url: str) -> None:
    assert migrate.upgrade_database(empty_url) == migrate.head_revision()
    assert migrate.upgrade_database(empty_url) == migrate.head_revision()
    assert migrate.current_revision(empty_url) == migrate.head_revision()
    migrate.check_schema(empty_url)
    engine = create_store_engine(empty_url)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert {t.name for t in metadata.sorted_tables} | {VERSION_TABLE} <= tables


def test_migrated_schema_matches_tables_module(db_url: str) -> None:
    for module in ("duetime.store.tables_auth",):  # tables other issues add to the metadata
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    engine = create_store_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_older_revision_is_refused_naming_migrate(db_url: str, later_scripts: str) -> None:
    with pytest.raises(SchemaOutdatedError, match="duetime migrate"):
        migrate.check_schema(db_url, script_location=later_scripts)
    migrate.upgrade_database(db_url, script_location=later_scripts)
    assert migrate.current_revision(db_url) == "9999_test_later"
    migrate.check_schema(db_url, script_location=later_scripts)


def test_newer_revision_is_refused(db_url: str, later_scripts: str) -> None:
    migrate.upgrade_database(db_url, script_location=later_scripts)
    with pytest.raises(SchemaOutdatedError, match="newer than this duetime"):
        SQLAlchemyStore(db_url, clock=FakeClock()).check_schema()


# ---------------------------------------------------------------- duetime init / migrate


def test_cli_init_is_idempotent_and_says_where(empty_url: str) -> None:
    from typer.testing import CliRunner

    from duetime.cli.main import app

    runner = CliRunner()
    first = runner.invoke(app, ["init", "--database", empty_url])
    assert first.exit_code == 0, first.output
    assert "database: " in first.output
    assert f"schema created at revision {migrate.head_revision()}" in first.output
    second = runner.invoke(app, ["init", "--database", empty_url])
    assert second.exit_code == 0
    assert "nothing to do" in second.output
    again = runner.invoke(app, ["migrate", "--database", empty_url])
    assert again.exit_code == 0
    assert "nothing to do" in again.output
    assert migrate.current_revision(empty_url) == migrate.head_revision()


def test_cli_sqlite_location_is_the_absolute_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from duetime.cli.main import app

    path = tmp_path / "db" / "x.db"
    path.parent.mkdir()
    result = CliRunner().invoke(app, ["migrate", "-d", f"sqlite:///{path}"])
    assert result.exit_code == 0, result.output
    assert f"database: SQLite file {path.resolve()}" in result.output


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("mysql://h/db", 2, "only sqlite:/// and postgresql:// are supported"),
        ("postgresql://nobody@127.0.0.1:1/none", 1, "cannot open the database"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(url: str, code: int, message: str) -> None:
    from typer.testing import CliRunner

    from duetime.cli.main import app

    result = CliRunner().invoke(app, ["migrate", "--database", url])
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1


@pytest.mark.slow
def test_init_in_a_real_subprocess_uses_the_environment(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DUETIME_DATABASE_URL": "sqlite:///sub.db"}
    command = [sys.executable, "-m", "duetime.cli.main", "init"]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert str((tmp_path / "sub.db").resolve()) in done.stdout
    assert migrate.current_revision(f"sqlite:///{tmp_path / 'sub.db'}") == migrate.head_revision()
    refused = subprocess.run(
        [
            sys.executable,
            "-c",
            "from duetime.scheduler import Scheduler; Scheduler('sqlite:///new.db')",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "duetime init" in refused.stderr


def _run_migration(url: str, direction: str, revision: str) -> None:
    engine = create_store_engine(url)
    config = migrate._config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            getattr(alembic_command, direction)(config, revision)
    finally:
        engine.dispose()


def _index_columns(url: str, name: str) -> list[str | None]:
    engine = create_store_engine(url)
    try:
        indexes = sa.inspect(engine).get_indexes("duetime_schedules")
    finally:
        engine.dispose()
    return next(index["column_names"] for index in indexes if index["name"] == name)


def test_0006_keys_the_prioritized_due_index_by_time_and_downgrades(empty_url: str) -> None:
    name = "ix_duetime_schedules_due_prioritized"
    migrate.upgrade_database(empty_url)
    assert _index_columns(empty_url, name) == ["next_run_at", "priority"]
    _run_migration(empty_url, "downgrade", "0005_schedules_due_prioritized")
    assert _index_columns(empty_url, name) == ["priority", "next_run_at"]  # 0005's shape
    assert migrate.upgrade_database(empty_url) == "0006_due_prioritized_by_time"
    assert _index_columns(empty_url, name) == ["next_run_at", "priority"]
