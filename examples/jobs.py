"""Demo jobs that ``make run`` schedules (``DUETIME_JOBS=examples.jobs``).

Four behaviours an operator wants to see on day one: a quick success, a slow run, a run
that fails on its first attempt and succeeds on the retry, and an HTTP check of the local
API. Run them by hand with ``duetime force <schedule>`` after ``duetime load
examples/demo.yaml``.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from duetime.jobs import RunContext, job

#: Where the demo health check looks when no ``url`` parameter is given.
DEFAULT_HEALTH_URL = "http://127.0.0.1:{port}/healthz"


@job("demo.quick", description="Say hello and succeed at once.")
def quick(ctx: RunContext, greeting: str = "hello") -> dict[str, Any]:
    """Succeed immediately with a small JSON result."""
    ctx.log.info("greeting", greeting=greeting)
    return {"greeting": greeting, "scheduled_for": ctx.scheduled_for.isoformat()}


@job("demo.slow", timeout=120, description="Work for a while (cooperatively cancellable).")
def slow(ctx: RunContext, seconds: float = 8.0) -> dict[str, Any]:
    """Sleep ``seconds`` in small steps, stopping early if the run is cancelled."""
    cancelled = ctx.sleep(seconds)
    return {"worked_seconds": seconds, "cancelled": cancelled}


class FlakyError(RuntimeError):
    """The demo's deliberate first-attempt failure."""


@job("demo.flaky", max_attempts=3, description="Fail on the first attempt, succeed on a retry.")
def flaky(ctx: RunContext, failing_attempts: int = 1) -> dict[str, Any]:
    """Raise on attempts 1..failing_attempts; the retry after that succeeds."""
    if ctx.attempt <= failing_attempts:
        raise FlakyError(f"attempt {ctx.attempt} fails on purpose; the retry will succeed")
    return {"succeeded_on_attempt": ctx.attempt}


@job("demo.api_health", timeout=30, description="GET the local duetime API's /healthz.")
def api_health(url: str | None = None, expect_status: int = 200) -> dict[str, Any]:
    """Fail unless the local API answers ``expect_status`` (default 200)."""
    target = url or DEFAULT_HEALTH_URL.format(port=os.environ.get("DUETIME_API_PORT", "8000"))
    response = httpx.get(target, timeout=10.0)
    if response.status_code != expect_status:
        raise RuntimeError(
            f"GET {target} returned {response.status_code}, expected {expect_status}"
        )
    return {"url": target, "status": response.status_code}
