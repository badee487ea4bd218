"""create_executor: names, job-module imports, errors."""

from __future__ import annotations

import pytest

from duetime.clock import FakeClock
from duetime.errors import ConfigurationError
from duetime.executors.asyncio import AsyncioExecutor
from duetime.executors.base import Executor
from duetime.executors.factory import create_executor
from duetime.executors.process import ProcessExecutor
from duetime.executors.thread import ThreadExecutor
from duetime.jobs import default_registry


@pytest.mark.parametrize(
    ("name", "cls"),
    [("process", ProcessExecutor), ("thread", ThreadExecutor), ("Asyncio", AsyncioExecutor)],
)
def test_builds_each_executor(name: str, cls: type) -> None:
    ex = create_executor(
        name, concurrency=3, registry=default_registry, jobs_modules=[], clock=FakeClock()
    )
    assert isinstance(ex, cls)
    assert isinstance(ex, Executor)
    assert ex.name == name.lower()
    assert ex.free_slots == 0  # not started yet


def test_imports_job_modules() -> None:
    create_executor(
        "thread",
        concurrency=1,
        registry=default_registry,
        jobs_modules=["fixtures_jobs.demo"],
        clock=FakeClock(),
    )
    assert "fx.add" in default_registry


@pytest.mark.parametrize(
    ("name", "modules", "concurrency", "fragment"),
    [
        ("celery", [], 1, "not available yet"),
        ("celery:reports", [], 1, "not available yet"),
        ("greenlet", [], 1, "unknown executor 'greenlet'"),
        ("thread", ["fixtures_jobs.nope"], 1, "cannot import job module"),
        ("thread", [], 0, "concurrency"),
    ],
)
def test_errors(name: str, modules: list[str], concurrency: int, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        create_executor(
            name,
            concurrency=concurrency,
            registry=default_registry,
            jobs_modules=modules,
            clock=FakeClock(),
        )
