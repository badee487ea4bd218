"""CLI test helpers: a migrated SQLite database, the demo jobs and a Typer runner."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Cli:
    """Invoke ``duetime`` in-process against one database."""

    runner: CliRunner
    database_url: str

    def __call__(self, *args: str, input: str | None = None) -> Result:
        from duetime.cli.main import app

        return self.runner.invoke(app, list(args), input=input, catch_exceptions=False)

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def scheduler(self, **kw: Any) -> Any:
        from duetime.scheduler import Scheduler

        return Scheduler(self.database_url, jobs=["examples.jobs"], **kw)


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A CLI bound (through the environment) to a fresh migrated SQLite database."""
    monkeypatch.chdir(tmp_path)
    if str(REPO_ROOT) not in sys.path:
        monkeypatch.syspath_prepend(str(REPO_ROOT))
    monkeypatch.setenv("DUETIME_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("DUETIME_JOBS", "examples.jobs")
    monkeypatch.delenv("DUETIME_DEBUG", raising=False)
    return Cli(CliRunner(), sqlite_url)


def one_error_line(result: Result) -> str:
    """Assert the command failed with exit 2 and one ``error:`` line, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture
def error_line() -> Callable[[Result], str]:
    """The :func:`one_error_line` helper as a fixture."""
    return one_error_line
