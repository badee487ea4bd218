"""``duetime init`` (first admin key), ``duetime api-key create|list|revoke``."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from duetime.cli.main import app
from duetime.clock import SystemClock
from duetime.keys import ApiKeyService, Role
from duetime.store.sqlalchemy import SQLAlchemyStore

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _service(url: str) -> ApiKeyService:
    return ApiKeyService(SQLAlchemyStore(url, clock=SystemClock()), cache_seconds=0)


def test_init_creates_first_admin_key_once(workdir: Path, db_url: str) -> None:
    first = runner.invoke(app, ["init", "--database", db_url])
    assert first.exit_code == 0, first.output
    key_file = workdir / ".duetime" / "admin.key"
    secret = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secret in first.output
    key = _service(db_url).authenticate(secret)
    assert key is not None
    assert (key.tenant, key.role) == ("*", Role.ADMIN)
    again = runner.invoke(app, ["init", "--database", db_url])
    assert again.exit_code == 0, again.output
    assert secret not in again.output
    assert key_file.read_text().strip() == secret
    assert len(_service(db_url).list()) == 1


def test_init_replaces_a_revoked_key_file(workdir: Path, sqlite_url: str) -> None:
    runner.invoke(app, ["init", "--database", sqlite_url])
    old = (workdir / ".duetime" / "admin.key").read_text().strip()
    service = _service(sqlite_url)
    service.revoke(service.list()[0].id)
    result = runner.invoke(app, ["init", "--database", sqlite_url])
    new = (workdir / ".duetime" / "admin.key").read_text().strip()
    assert new != old
    assert new in result.output
    assert service.authenticate(new) is not None


def test_api_key_create_list_revoke(workdir: Path, sqlite_url: str) -> None:
    created = runner.invoke(
        app,
        ["api-key", "create", "--tenant", "acme", "--role", "operator", "--json", "-d", sqlite_url],
    )
    assert created.exit_code == 0, created.output
    data = json.loads(created.output)
    assert set(data) == {"id", "key", "tenant", "role"}
    assert (data["tenant"], data["role"]) == ("acme", "operator")
    listed = runner.invoke(app, ["api-key", "list", "--json", "-d", sqlite_url])
    rows = json.loads(listed.output)
    assert [r["id"] for r in rows] == [data["id"]]
    assert data["key"] not in listed.output
    revoked = runner.invoke(app, ["api-key", "revoke", data["id"], "-d", sqlite_url])
    assert revoked.exit_code == 0, revoked.output
    assert _service(sqlite_url).authenticate(data["key"]) is None
    assert (
        json.loads(runner.invoke(app, ["api-key", "list", "--json", "-d", sqlite_url]).output) == []
    )


def test_api_key_bad_role_exits_2(workdir: Path, sqlite_url: str) -> None:
    result = runner.invoke(
        app, ["api-key", "create", "--tenant", "a", "--role", "root", "-d", sqlite_url]
    )
    assert result.exit_code == 2
    assert "role" in result.output
