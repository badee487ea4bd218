"""Review findings on execution results: sizes and depths that the store/API cannot hold."""

from __future__ import annotations

from typing import Any

from jobs_helpers import make_request

from duetime.jobs.execute import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_TRACEBACK_CHARS,
    check_result,
    execute_request,
)
from duetime.jobs.registry import JobRegistry, job
from duetime.models import RunState


def test_deeply_nested_result_is_a_result_error() -> None:
    """A 900-level result was stored, then reading the run failed to serialise (API 500)."""
    nested: Any = []
    for _ in range(900):
        nested = [nested]
    outcome = check_result({"a": nested})
    assert outcome.state is RunState.FAILED
    assert outcome.error is not None
    assert "nest" in outcome.error.message


def test_huge_exception_messages_are_truncated() -> None:
    """A 10 MB exception message was stored whole in the run's error (twice: message and
    traceback)."""
    registry = JobRegistry()

    @job("boom", registry=registry)
    def boom() -> None:
        raise ValueError("x" * 10_000_000 + "END")

    outcome = execute_request(make_request("boom"), registry)
    assert outcome.error is not None
    assert len(outcome.error.message) <= MAX_ERROR_MESSAGE_CHARS
    assert outcome.error.traceback is not None
    assert len(outcome.error.traceback) <= MAX_TRACEBACK_CHARS
    assert outcome.error.traceback.rstrip().endswith("END")  # the tail names the exception
