"""Group commit of run-now requests: one writer thread, one transaction per batch.

A ``POST /schedules/{id}/trigger`` (or ``/action`` with ``trigger``) needs a write
transaction, and on SQLite the writers of every process take turns on one lock: each turn
costs a lock hand-over, a ``BEGIN IMMEDIATE``, a commit and a wake-up of the engine, which
takes its own turn in between. So requests that arrive while a batch is being written wait
for it to finish and then go together: one thread hop, one transaction and one commit for
all of them (:meth:`duetime.scheduler.Scheduler.commit_triggers`). A lone request goes at
once, so an idle server adds no delay. Each request still reads its schedule under the
write lock (live, at the expected version) and gets its own answer or error.

Only on SQLite (``grouped``). On PostgreSQL each request keeps its own transaction on a
worker thread, as before: there writers do not queue on one lock, and a batch would hold
several schedules' row locks at once (a lock cycle with a claim or another batch) and wait
on any one of them with every other tenant's requests behind it.
See docs/decisions/0012-api-write-path.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from duetime.models import Run
from duetime.store.sqlalchemy import RunRequest

#: At most this many requests share one transaction (a longer queue waits for the next).
MAX_BATCH = 64

Commit = Callable[[Sequence[RunRequest]], list[Run | Exception]]
_Waiting = tuple[RunRequest, "asyncio.Future[Run]"]


class TriggerBatcher:
    """Collect run-now requests on the event loop; write them in batches on one thread."""

    def __init__(self, commit: Commit, *, grouped: bool = True) -> None:
        self._commit = commit
        self._grouped = grouped
        self._waiting: list[_Waiting] = []
        self._drain: asyncio.Task[None] | None = None
        self._writer: ThreadPoolExecutor | None = None

    @property
    def queued(self) -> int:
        """Requests waiting for the next batch."""
        return len(self._waiting)

    async def submit(self, request: RunRequest) -> Run:
        """Create the run of ``request`` in the next batch; raise what refused it."""
        if not self._grouped:
            (result,) = await run_in_threadpool(self._commit, [request])
            if isinstance(result, Exception):
                raise result
            return result
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Run] = loop.create_future()
        self._waiting.append((request, future))
        drain = self._drain
        if drain is None or drain.done() or drain.get_loop() is not loop:
            self._drain = loop.create_task(self._write_batches())
        return await future

    async def _write_batches(self) -> None:
        loop = asyncio.get_running_loop()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="duetime-api-writer")
        batch: list[_Waiting] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                requests = [request for request, _ in batch]
                try:
                    results = await loop.run_in_executor(self._writer, self._commit, requests)
                except Exception as exc:  # the batch as a whole failed (no answer per request)
                    results = [exc] * len(batch)
                _answer(batch, results)
                batch = []
        finally:  # whatever ended this drain, nobody is left waiting for an answer
            left, self._waiting = batch + self._waiting, []
            _answer(left, [_unavailable() for _ in left])

    def close(self) -> None:
        """Stop the writer thread (after the batch it is writing, if any); a later request
        starts a new one."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)


def _answer(batch: Sequence[_Waiting], results: Sequence[Run | Exception]) -> None:
    """Resolve each request's future with its run or error (cancelled ones are skipped)."""
    for (_, future), result in zip(batch, results, strict=True):
        if future.done() or future.get_loop().is_closed():
            continue  # the request was cancelled (its run stands)
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)


def _unavailable() -> Exception:
    """The error of a request whose batch could not be written (answered 503)."""
    return OperationalError("run-now batch", None, RuntimeError("the batch writer stopped"))
