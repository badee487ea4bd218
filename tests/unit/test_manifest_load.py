"""load_manifest via the facade on SQLite and PostgreSQL: one transaction; dry runs roll back."""

from __future__ import annotations

from typing import Any

import pytest

from duetime.jobs import job
from duetime.manifest import ManifestError, load_manifest
from duetime.scheduler import Scheduler


@job("manifest_test.echo")
def echo(word: str = "hi") -> dict[str, str]:
    """Return the word (a job for manifest tests)."""
    return {"word": word}


def entry(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "job": "manifest_test.echo", "cron": "*/5 * * * *", **fields}


def stored(scheduler: Scheduler) -> dict[str, Any]:
    return {s.name: s for s in scheduler.list_schedules(limit=500).items}


def test_create_update_unchanged_and_prune(scheduler: Scheduler) -> None:
    plan = load_manifest(scheduler, {"schedules": [entry("a"), entry("b")]})
    assert plan.counts()["create"] == 2
    assert plan.applied
    assert {s.source for s in stored(scheduler).values()} == {"manifest"}
    plan = load_manifest(
        scheduler,
        {"schedules": [entry("a", parameters={"word": "yo"})]},
        prune=True,
    )
    assert [(i.action, i.name) for i in plan.items] == [("update", "a"), ("delete", "b")]
    after = stored(scheduler)
    assert set(after) == {"a"}
    assert after["a"].parameters == {"word": "yo"}
    assert after["a"].version == 2
    again = load_manifest(scheduler, {"schedules": [entry("a", parameters={"word": "yo"})]})
    assert again.counts()["unchanged"] == 1


def test_dry_run_checks_everything_then_rolls_back(scheduler: Scheduler) -> None:
    plan = load_manifest(scheduler, {"schedules": [entry("a"), entry("b")]}, dry_run=True)
    assert plan.counts()["create"] == 2
    assert not plan.applied
    assert stored(scheduler) == {}
    with pytest.raises(ManifestError, match=r"schedules\[1\]\.parameters"):
        load_manifest(
            scheduler,
            {"schedules": [entry("a"), entry("b", parameters={"nope": 1})]},
            dry_run=True,
        )


def test_a_failure_late_in_the_load_keeps_nothing(scheduler: Scheduler) -> None:
    load_manifest(scheduler, {"schedules": [entry("kept")]})
    bad = {
        "schedules": [
            entry("kept", description="changed"),
            entry("new-one"),
            entry("bad", parameters={"word": 5}),
        ]
    }
    with pytest.raises(ManifestError) as info:
        load_manifest(scheduler, bad, prune=True)
    assert str(info.value).startswith("<data>: schedules[2].parameters.word:")
    after = stored(scheduler)
    assert set(after) == {"kept"}
    assert after["kept"].description is None
    assert after["kept"].version == 1


def test_a_one_off_in_the_past_is_refused_with_its_field(scheduler: Scheduler) -> None:
    past = {
        "name": "once",
        "job": "manifest_test.echo",
        "trigger": {"type": "date", "run_at": "2001-01-01T00:00:00+00:00"},
    }
    with pytest.raises(ManifestError, match=r"schedules\[0\]\.trigger\.run_at: .*past"):
        load_manifest(scheduler, {"schedules": [past]})
    assert stored(scheduler) == {}


def test_progress_is_reported_per_written_schedule(scheduler: Scheduler) -> None:
    seen: list[tuple[int, int]] = []
    load_manifest(
        scheduler,
        {"schedules": [entry("a"), entry("b")]},
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(1, 2), (2, 2)]


@job("manifest_test.count")
def count(n: float = 1.0) -> dict[str, float]:
    """Return n (a job whose parameters are coerced)."""
    return {"n": n}


def test_coerced_parameters_are_not_a_change_on_reload(scheduler: Scheduler) -> None:
    data = {
        "schedules": [
            {"name": "c", "job": "manifest_test.count", "cron": "@daily", "parameters": {"n": "8"}}
        ]
    }
    assert load_manifest(scheduler, data).counts()["create"] == 1
    assert stored(scheduler)["c"].parameters == {"n": 8.0}
    assert load_manifest(scheduler, data).counts()["unchanged"] == 1
    bad = {
        "schedules": [
            {
                "name": "c",
                "job": "manifest_test.count",
                "cron": "@daily",
                "parameters": {"n": "many"},
            }
        ]
    }
    with pytest.raises(ManifestError, match=r"^<data>: schedules\[0\]\.parameters\.n: "):
        load_manifest(scheduler, bad, dry_run=True)
