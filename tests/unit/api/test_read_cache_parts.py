"""Pieces of the read cache: one computation per key at a time, query normalisation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from duetime.api.read_cache import CACHEABLE_PATH, _bearer, _Flights, _query


def test_concurrent_misses_share_one_computation() -> None:
    async def scenario() -> tuple[list[str], int]:
        flights = _Flights()
        release = asyncio.Event()
        calls = 0

        async def compute() -> str:
            nonlocal calls
            calls += 1
            await release.wait()
            return "answer"

        tasks = [asyncio.create_task(flights.run(("k", 1), compute)) for _ in range(5)]
        while not all(_waiting(t) for t in tasks[1:]) or calls == 0:
            await asyncio.sleep(0)
        release.set()
        return list(await asyncio.gather(*tasks)), calls

    results, calls = asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert results == ["answer"] * 5
    assert calls == 1


def _waiting(task: asyncio.Task[Any]) -> bool:
    return not task.done() and task._fut_waiter is not None  # type: ignore[attr-defined]


def test_a_failed_computation_answers_none_to_the_waiters() -> None:
    async def scenario() -> tuple[object, object]:
        flights = _Flights()
        fail_now = asyncio.Event()

        async def fail() -> str:
            await fail_now.wait()
            raise RuntimeError("boom")

        async def never() -> str:
            raise AssertionError("a waiter must not compute")

        leader = asyncio.create_task(flights.run("k", fail))
        await asyncio.sleep(0)  # the leader is now registered and waiting
        follower = asyncio.create_task(flights.run("k", never))
        while not _waiting(follower):
            await asyncio.sleep(0)
        fail_now.set()
        results = await asyncio.gather(leader, follower, return_exceptions=True)
        return results[0], results[1]

    leader, follower = asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert isinstance(leader, RuntimeError)
    assert follower is None


def test_a_different_key_or_version_computes_again() -> None:
    async def scenario() -> int:
        flights = _Flights()
        calls = 0

        async def compute() -> int:
            nonlocal calls
            calls += 1
            return calls

        await flights.run(("k", 1), compute)
        await flights.run(("k", 1), compute)  # not running any more: computes again
        await flights.run(("k", 2), compute)
        return calls

    assert asyncio.run(scenario()) == 3


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        (b"", b""),
        (b"limit=20", b"limit=20"),
        (b"limit=20&cursor=x", b"cursor=x&limit=20"),
        (b"state=b&limit=1&state=a", b"limit=1&state=b&state=a"),  # repeats keep their order
    ],
)
def test_query_parameters_are_sorted_by_name_only(raw: bytes, normal: bytes) -> None:
    assert _query(raw) == normal


def test_cacheable_paths() -> None:
    for path in (
        "/api/v1/schedules",
        "/api/v1/schedules/nightly",
        "/api/v1/schedules/nightly/runs",
        "/api/v1/runs",
        "/api/v1/runs/abc",
    ):
        assert CACHEABLE_PATH.match(path), path
    for path in (
        "/api/v1/schedules/nightly/next-runs",
        "/api/v1/status",
        "/api/v1/metrics",
        "/api/v1/jobs",
        "/api/v1/webhooks",
        "/api/v1/schedules/",
        "/schedules",
    ):
        assert not CACHEABLE_PATH.match(path), path


def test_bearer_header() -> None:
    assert _bearer([(b"authorization", b"Bearer dtk_x")]) == "dtk_x"
    assert _bearer([(b"authorization", b"bearer  dtk_x ")]) == "dtk_x"
    assert _bearer([(b"authorization", b"Basic abc")]) is None
    assert _bearer([(b"authorization", b"Bearer ")]) is None
    assert _bearer([]) is None
