"""TriggerBatcher: whatever ends a drain, no request is left waiting for an answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import OperationalError

from duetime.api.batching import TriggerBatcher


def test_a_commit_answering_the_wrong_number_of_requests_fails_them_all() -> None:
    def broken(requests: Sequence[Any]) -> list[Any]:
        return []  # one answer short per request: the drain cannot match them up

    batcher = TriggerBatcher(broken)

    async def scenario() -> list[BaseException | None]:
        tasks = [asyncio.ensure_future(batcher.submit(object())) for _ in range(3)]  # type: ignore[arg-type]
        done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        return [r if isinstance(r, BaseException) else None for r in done]

    try:
        errors = asyncio.run(scenario())
    finally:
        batcher.close()
    assert all(isinstance(e, OperationalError) for e in errors), errors


def test_ungrouped_requests_are_committed_one_by_one() -> None:
    seen: list[int] = []

    def commit(requests: Sequence[Any]) -> list[Any]:
        seen.append(len(requests))
        return [f"run-{len(seen)}"]

    batcher = TriggerBatcher(commit, grouped=False)

    async def scenario() -> list[Any]:
        return list(await asyncio.gather(*(batcher.submit(object()) for _ in range(3))))  # type: ignore[arg-type]

    assert sorted(asyncio.run(scenario())) == ["run-1", "run-2", "run-3"]
    assert seen == [1, 1, 1]
