"""``duetime cron`` as users run it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DUETIME = Path(sys.executable).parent / "duetime"
TIMEOUT_SECONDS = 60


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DUETIME), "cron", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def test_next_json_across_fall_back() -> None:
    result = run(
        "next",
        "30 1 * * *",
        "--tz",
        "America/New_York",
        "--after",
        "2026-11-01T00:00:00-04:00",
        "--count",
        "2",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    # a fixed-time job runs once in the repeated hour (first pass)
    assert json.loads(result.stdout) == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]


def test_validate_prints_description_and_table() -> None:
    result = run("validate", "*/15 9-17 * * 1-5", "--tz", "Europe/Stockholm")
    assert result.returncode == 0, result.stderr
    assert "every 15 minutes, between 09:00 and 17:59, Monday through Friday" in result.stdout
    assert "UTC" in result.stdout
    assert "local (Europe/Stockholm)" in result.stdout


def test_invalid_expression_exits_2_without_traceback() -> None:
    result = run("next", "0 0 32 * *", "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == 'error: day-of-month 32 is out of range 1–31 in "0 0 32 * *"'
