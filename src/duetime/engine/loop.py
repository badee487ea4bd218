"""The engine: one asyncio loop per database, a cycle of named steps (DESIGN §3.1).

    fire → start → finish → recover → sleep

Each step is one short method that calls :mod:`duetime.store.claims`; the loop sleeps until
the next instant it has work or until a change wakes it (in-process event, PostgreSQL
NOTIFY, SQLite ``data_version``). Heartbeats renew leases on their own timer. Executor
threads hand outcomes over through a thread-safe inbox; they are written in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from duetime.clock import Clock
from duetime.config import Settings
from duetime.engine.inbox import OutcomeInbox
from duetime.engine.leases import LeaseBook, renew, sample_clock_offset
from duetime.engine.prefetch import Entry, PrefetchExecutor
from duetime.engine.waiting import PostgresListener, SQLiteChangeWatcher, Waker
from duetime.executors.base import ExecutionRequest, Executor, Outcome
from duetime.models import Run, RunError, RunState
from duetime.store import claims
from duetime.store.sqlalchemy import change_origin

if TYPE_CHECKING:
    from duetime.store.sqlalchemy import SQLAlchemyStore

log = logging.getLogger(__name__)

#: Transient database errors back off exponentially up to this many seconds.
MAX_ERROR_BACKOFF_SECONDS = 30.0
FIRST_ERROR_BACKOFF_SECONDS = 0.2

#: Outcomes written per finish transaction.
FINISH_BATCH = 500

#: Outcomes wait this long for company before the loop wakes to write them (group commit);
#: it wakes at once when a claim is worth making or a full batch waits.
FINISH_DELAY_SECONDS = 0.05

#: A claim reads past runs held back by ``max_instances`` at most this often (seconds):
#: that read walks the whole held-back backlog, and runs of other schedules behind it
#: wait at most this long for it.
READ_PAST_SECONDS = 0.25

#: How often a stopping engine collects outcomes while the executor drains (seconds).
SHUTDOWN_POLL_SECONDS = 0.1

#: How long ``start_background`` waits for the loop to come up.
START_TIMEOUT_SECONDS = 30.0

#: Publishing job types races with replicas doing the same (update-then-insert); retry it.
PUBLISH_ATTEMPTS = 3

#: Error type of a run whose job type is not registered in the executing process.
UNKNOWN_JOB = "UnknownJobError"

#: Errors the loop survives: logged, backed off, retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (sa.exc.OperationalError, sa.exc.DBAPIError)


def default_instance_id() -> str:
    """Return ``host:pid:random`` — unique per engine."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Engine:
    """Fires schedules and executes runs of one database (see module docstring)."""

    def __init__(
        self,
        store: SQLAlchemyStore,
        *,
        registry: Any,
        executor: Executor,
        clock: Clock,
        settings: Settings,
        instance_id: str | None = None,
        database_url_for_jobs: str | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.executor = (
            executor
            if isinstance(executor, PrefetchExecutor)
            else PrefetchExecutor(
                executor, clock, concurrency=getattr(executor, "concurrency", settings.concurrency)
            )
        )
        self.clock = clock
        self.settings = settings
        self.instance_id = instance_id or default_instance_id()
        self._jobs_url = database_url_for_jobs or store.url
        self._waker = Waker()
        self._inbox = OutcomeInbox(self._outcome_arrived)
        self._leases = LeaseBook()
        self._prepared = False
        self._executor_started = False
        self._stopping = False
        self._running = False
        self._more_work = False
        self._last_heartbeat: float | None = None
        self._last_recover: float | None = None
        self._last_read_past: float | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_stop: asyncio.Event | None = None
        self._db_failures = 0
        self._checked_at: datetime | None = None
        self._saturated = False

    # ------------------------------------------------------------ public
    @property
    def running(self) -> bool:
        """True while :meth:`run` is looping."""
        return self._running

    def wake(self) -> None:
        """Make the loop re-evaluate at once (thread-safe)."""
        self._waker.wake()

    async def tick(self) -> None:
        """Run one cycle without sleeping: fire, start, finish, recover.

        Our own leases are renewed first (when a heartbeat is due), so a loop that was busy
        does not judge its own runs lost. Runs already waiting (fired a lookahead early)
        start before this cycle's firing work, which would only delay them; runs a fire
        makes due at once start in the same cycle.
        """
        self._prepare()
        self._waker.clear()
        self._more_work = False
        self._heartbeat_if_due()
        checked_at = self.clock.now()
        self.executor.pump()  # a slot freed without an outcome (a timed-out thread returned)
        self._release_stale()
        self._start()
        if self._fire_due_now():
            self._start()
        self._cancel_requested()
        self._finish()
        self._recover()
        self._checked_at = checked_at  # only a completed cycle has looked at what was due

    def _fire_due_now(self) -> bool:
        """Fire (step 1); tell whether it created runs that may start right away.

        While due runs fill every slot, only fires already due are made: firing ahead
        (the lookahead) would delay runs that are due now and can wait for a calmer cycle.
        Unless this engine's runs are known to be long, it fires only as many schedules as
        it can start now (claimed in the same transaction); an engine full of short runs
        fires nothing until room opens. Long runs keep the old way: every due fire becomes
        a pending run at once, so a busy engine turns no fire into a miss.
        """
        now = self.clock.now()
        slots = 0 if self._saturated else self.executor.free_slots
        if slots == 0 and self.executor.known_short():
            self._saturated = True
            return False  # busy with short runs: fire when room opens (moments from now)
        claim = claims.DirectClaim(
            self.instance_id,
            slots,
            self.settings.lease_seconds,
            until=self._claim_until(now),
            only_what_starts=not self.executor.known_long(),
        )
        created = self._fire(lookahead_seconds=0.0 if self._saturated else None, claim=claim)
        self._submit(
            [r for r in created if r.state is RunState.RUNNING and r.worker == self.instance_id]
        )
        if slots > 0 and claim.slots == 0:
            self._saturated = True  # every slot taken (fires may wait): outcomes wake us at once
        return any(r.state is RunState.PENDING and r.available_at <= now for r in created)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Cycle until ``stop`` is set, then shut down gracefully."""
        stop = stop or asyncio.Event()
        self._waker.bind()
        watcher, listener = self._change_sources()
        stopper = asyncio.create_task(self._wake_on(stop))
        self.store.add_change_listener(self.wake, except_thread=threading.get_ident())
        self._running = True
        log.info("engine started", extra={"event": "engine.started", "instance": self.instance_id})
        try:
            while not stop.is_set():
                await self._guarded(self.tick)
                await self._sleep(stop, watcher)
            await self._shutdown()
        finally:
            stopper.cancel()
            self.store.remove_change_listener(self.wake)
            self._close_sources(watcher, listener)
            self._running = False
            await self._guarded(self._mark_stopped, retry=False)

    async def run_pending(self) -> list[Run]:
        """Fire what is due, start the due runs here and wait until they finish (§3.1)."""
        self._prepare()
        self._waker.bind()
        self.store.add_change_listener(self.wake, except_thread=threading.get_ident())
        try:
            started = await self._run_due_here()
        finally:
            self.store.remove_change_listener(self.wake)
            if not self._running:  # a one-shot engine: do not leave a live-looking instance
                self.store.stop_instance(self.instance_id, self.clock.now())
                self._prepared = False
        return claims.get_runs(self.store, started)

    async def _run_due_here(self) -> list[str]:
        """Fire and start what is due until nothing started here is still running."""
        started: list[str] = []
        while True:
            self._waker.clear()
            self._more_work = False
            self._fire(lookahead_seconds=0.0)  # nothing ahead: we only wait for what is due
            started.extend(run.id for run in self._start(ahead=False))
            self._finish()
            if not self._leases and not self._inbox and not self._more_work:
                break
            if not self._more_work:
                await self._waker.wait(self.settings.heartbeat_seconds)
            self._heartbeat_if_due()
        return started

    def start_background(self) -> None:
        """Run the loop in its own thread; return once it runs."""
        if self._thread is not None and self._thread.is_alive():
            return
        ready = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run_in_thread(ready)),
            name=f"duetime-engine-{self.instance_id}",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError("the engine thread did not start within 30 s")

    def stop(self, *, wait: bool = True) -> None:
        """Stop the background loop (graceful); with ``wait`` return once it has stopped."""
        loop, event = self._thread_loop, self._thread_stop
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        self.wake()
        if wait and self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        """Release what :meth:`run_pending` left behind (the executor); not while running."""
        if self._running or not self._executor_started:
            return
        self.executor.shutdown(self.settings.shutdown_grace_seconds)
        self._executor_started = False
        self._prepared = False

    # ------------------------------------------------------------ steps
    def _fire(
        self, lookahead_seconds: float | None = None, claim: claims.DirectClaim | None = None
    ) -> list[Run]:
        """Step 1: fire due schedules (§3.2, §3.3) — one transaction per batch.

        With ``claim``, fires due now start in the same transaction (no pending round trip).
        """
        if self._stopping:
            return []
        if lookahead_seconds is None:
            lookahead_seconds = self.settings.lookahead_seconds
        created = claims.fire_due(
            self.store,
            now=self.clock.now(),
            lookahead_seconds=lookahead_seconds,
            registry=self.registry,
            claim=claim if claim is not None and claim.slots > 0 else None,
        )
        if created:
            log.debug("fired", extra={"event": "engine.fired", "count": len(created)})
        return created

    def _start(self, *, ahead: bool = True) -> list[Run]:
        """Step 2: claim pending runs up to our free slots and hand them to the executor.

        With ``ahead``, runs available within the lookahead are claimed too; the executor
        wrapper hands each over at its instant (docs/decisions/0008).
        """
        slots = 0 if self._stopping else self.executor.free_slots
        now = self.clock.now()
        runs = claims.claim_runs(
            self.store,
            now=now,
            worker=self.instance_id,
            slots=slots,
            lease_seconds=self.settings.lease_seconds,
            until=self._claim_until(now) if ahead else None,
            read_past=self._read_past_due(),
        )
        self._submit(runs)
        # no room (or all of it taken): fire only what is due now, not the lookahead
        self._saturated = slots == 0 or len(runs) == slots
        if self._saturated and self.executor.free_slots > 0:
            self._more_work = True  # there may be more to start right away
        return runs

    def _read_past_due(self) -> bool:
        """True at most every READ_PAST_SECONDS: this claim may read past held-back runs."""
        mono = self.clock.monotonic()
        last = self._last_read_past
        if last is not None and mono - last < READ_PAST_SECONDS:
            return False
        self._last_read_past = mono
        return True

    def _finish(self) -> None:
        """Step 3: write collected outcomes (fenced by lease token) in batches."""
        while batch := self._inbox.drain(FINISH_BATCH):
            try:
                done = claims.finish_runs(
                    self.store, batch, now=self.clock.now(), registry=self.registry
                )
            except TRANSIENT_ERRORS:
                self._inbox.requeue(batch)
                raise
            for outcome in batch:
                self._leases.release(outcome.run_id)
            if done.follow_ups:
                self._more_work = True  # retries, recoveries and chain fires may be due now

    def _recover(self) -> None:
        """Step 4: fail runs whose lease expired and create their recoveries.

        Leases last ``lease_seconds``; looking for expired ones once per third of that (at
        most once per heartbeat interval) keeps this write off the per-run hot path.
        """
        mono = self.clock.monotonic()
        interval = min(self.settings.heartbeat_seconds, self.settings.lease_seconds / 3)
        if self._last_recover is not None and mono - self._last_recover < interval:
            return
        self._last_recover = mono
        recovered = claims.recover_expired(self.store, now=self.clock.now())
        for run in recovered:
            self._leases.release(run.id)
        if recovered:
            self._more_work = True  # their recovery runs are due now

    async def _sleep(self, stop: asyncio.Event, watcher: SQLiteChangeWatcher | None) -> None:
        """Step 5: sleep until the next due instant, a change, or ``stop``."""
        remaining = 0.0 if self._more_work else self._seconds_until_due()
        while remaining > 0 and not stop.is_set():
            step = min(remaining, self._change_check_seconds(watcher))
            if await self._waker.wait(step) or (watcher is not None and watcher.changed()):
                return
            remaining -= step

    # ------------------------------------------------------------ helpers
    def _outcome_arrived(self, waiting: int) -> None:
        """Executor thread: wake the loop to write outcomes — soon, or at once if it pays."""
        if waiting >= FINISH_BATCH or self._stopping:
            self._waker.wake()
        elif self._saturated and self.executor.wants_more():
            self._waker.wake()  # runs wait for the room this outcome made
        elif waiting == 1:
            self._waker.wake_later(FINISH_DELAY_SECONDS)

    def _submit(self, runs: list[Run]) -> None:
        """Hand claimed runs to the executor (one batch); failures become outcomes."""
        entries: list[Entry] = []
        for run in runs:
            assert run.lease_token is not None
            self._leases.hold(run.id, run.lease_token)
            if self.registry.find(run.job) is None:
                message = self._unknown_job_message(run.job)
                self._inbox.put(self._failure(run, UNKNOWN_JOB, message))
                continue
            entries.append((self._request(run), run.priority, run.available_at))
        if not entries:
            return
        try:
            self.executor.submit_many(entries)
        except Exception as exc:
            log.exception("submit failed", extra={"event": "run.submit_failed"})
            by_id = {run.id: run for run in runs}
            for request, _, _ in entries:  # none was queued: the batch is refused whole
                run = by_id[request.run_id]
                self._inbox.put(self._failure(run, type(exc).__name__, f"could not start: {exc}"))

    def _request(self, run: Run) -> ExecutionRequest:
        assert run.lease_token is not None
        return ExecutionRequest(
            run_id=run.id,
            job=run.job,
            parameters=run.parameters,
            attempt=run.attempt,
            lease_token=run.lease_token,
            timeout_seconds=run.timeout,
            scheduled_for=run.scheduled_for,
            schedule_id=run.schedule_id,
            schedule_name=run.schedule_name,
            tenant=run.tenant,
            max_attempts=run.max_attempts,
            database_url=self._jobs_url,
        )

    def _claim_until(self, now: datetime) -> datetime:
        """The latest ``available_at`` a claim now may take (now + lookahead)."""
        return now + timedelta(seconds=self.settings.lookahead_seconds)

    def _unknown_job_message(self, job: str) -> str:
        modules = ", ".join(self.settings.jobs) or "none"
        return (
            f"job type {job!r} is not registered in engine {self.instance_id} "
            f"(imported job modules: {modules}); add its module to DUETIME_JOBS / --jobs"
        )

    def _failure(self, run: Run, error_type: str, message: str) -> Outcome:
        now = self.clock.now()
        assert run.lease_token is not None
        return Outcome(
            run_id=run.id,
            lease_token=run.lease_token,
            state=RunState.FAILED,
            started_at=now,
            finished_at=now,
            error=RunError(type=error_type, message=message),
        )

    def _cancel_requested(self) -> None:
        """Stop runs executing here whose cancellation was requested (API or ``replace``)."""
        running = self.executor.running()
        for run_id in claims.cancel_requested(self.store, running):
            if self.executor.cancel(run_id):
                log.info("run cancelled", extra={"event": "run.cancelling", "run_id": run_id})

    def _heartbeat_if_due(self) -> None:
        """Renew leases, correct the clock and mark this instance alive every heartbeat."""
        now = self.clock.monotonic()
        last = self._last_heartbeat
        if last is not None and now - last < self.settings.heartbeat_seconds:
            return
        self._last_heartbeat = now
        sample_clock_offset(self.store, self.clock)
        renew(self.store, self._leases, self.clock, self.settings.lease_seconds)
        self.store.heartbeat_instance(self.instance_id, self.clock.now())

    def _seconds_until_due(self) -> float:
        """Return how long nothing is due (capped at one heartbeat interval).

        An instant the last cycle already looked past (a pending run held back by
        ``max_instances`` or busy slots, a schedule another replica has locked) is not
        work: a change wakes us for it. An instant after that check — even one already
        reached — is, so a run that became due during the cycle starts without delay.
        """
        now = self.clock.now()
        checked = self._checked_at or now
        due = claims.next_due(self.store)
        # wake half a lookahead before the next instant: one cycle then fires and claims
        # everything due in the next half lookahead, handed over on time by the prefetch timer
        lookahead = timedelta(seconds=self.settings.lookahead_seconds / 2)
        instants = [
            due.next_fire_at - lookahead if due.next_fire_at else None,
            due.next_fire_at,  # a fire held back from the lookahead by an active run
            due.next_available_at - lookahead if due.next_available_at else None,
            due.next_available_at,  # a run the last claim left for lack of a slot
            due.next_lease_expiry_at,
        ]
        waits = [(i - now).total_seconds() for i in instants if i is not None and i > checked]
        return max(0.0, min([self.settings.heartbeat_seconds, *waits]))

    def _change_check_seconds(self, watcher: SQLiteChangeWatcher | None) -> float:
        from duetime.engine.waiting import SQLITE_CHANGE_CHECK_SECONDS

        return SQLITE_CHANGE_CHECK_SECONDS if watcher is not None else float("inf")

    # ------------------------------------------------------------ lifecycle
    def _prepare(self) -> None:
        """Once: start the executor, publish job types, register this instance."""
        if self._prepared:
            return
        if not self._executor_started:
            self.executor.start(self._inbox.put)
            self._executor_started = True
        self._publish_job_types()
        self.store.register_instance(self._instance_row(self.clock.now()))
        self._prepared = True

    def _publish_job_types(self) -> None:
        """Publish our job types; a replica publishing the same names at once is no error."""
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                self.store.publish_job_types(self.registry.all(), published_by=self.instance_id)
                return
            except sa.exc.IntegrityError:
                if attempt == PUBLISH_ATTEMPTS - 1:
                    raise

    def _instance_row(self, now: datetime) -> dict[str, Any]:
        from duetime import __version__

        return {
            "id": self.instance_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "executor": getattr(self.executor, "name", "unknown"),
            "concurrency": self.settings.concurrency,
            "version": __version__,
            "started_at": now,
            "heartbeat_at": now,
            "stopped_at": None,
        }

    def _change_sources(self) -> tuple[SQLiteChangeWatcher | None, PostgresListener | None]:
        if self.store.dialect == "sqlite":
            return SQLiteChangeWatcher(self.store), None
        listener = PostgresListener(
            self.store, self._waker, ignore=change_origin(threading.get_ident())
        )
        listener.start()
        return None, listener

    @staticmethod
    def _close_sources(
        watcher: SQLiteChangeWatcher | None, listener: PostgresListener | None
    ) -> None:
        if watcher is not None:
            watcher.close()
        if listener is not None:
            listener.stop()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.wake()

    async def _shutdown(self) -> None:
        """Stop firing and starting; let running jobs finish within the grace, then stop them."""
        self._stopping = True
        await self._guarded(self._release_queued, retry=False)
        grace = self.settings.shutdown_grace_seconds
        log.info("engine stopping", extra={"event": "engine.stopping", "grace_seconds": grace})
        draining = asyncio.ensure_future(asyncio.to_thread(self.executor.shutdown, grace))
        while not draining.done():
            await self._guarded(self._collect)
            await asyncio.wait({draining}, timeout=SHUTDOWN_POLL_SECONDS)
        await self._guarded(self._collect)

    def _release_stale(self) -> None:
        """Give back runs that waited here for a slot too long (other engines may be free)."""
        stale = self.executor.take_stale()
        if not stale:
            return
        claims.release_runs(self.store, [(r.run_id, r.lease_token) for r in stale])
        for request in stale:
            self._leases.release(request.run_id)
        log.info("queued runs given back", extra={"event": "runs.released", "count": len(stale)})

    async def _release_queued(self) -> None:
        """Give runs claimed but not started (the prefetch queue) back to ``pending``."""
        queued = self.executor.take_queued()
        if queued:
            claims.release_runs(self.store, [(r.run_id, r.lease_token) for r in queued])
        for request in queued:
            self._leases.release(request.run_id)

    async def _collect(self) -> None:
        self._finish()
        self._heartbeat_if_due()

    async def _mark_stopped(self) -> None:
        self.store.stop_instance(self.instance_id, self.clock.now())
        log.info("engine stopped", extra={"event": "engine.stopped", "instance": self.instance_id})

    async def _guarded(self, step: Callable[[], Awaitable[None]], *, retry: bool = True) -> None:
        """Run ``step``; on an error log it and back off; nothing crashes the loop.

        Database errors are expected (restarts, failovers) and logged as warnings; anything
        else is logged with its traceback. The caller's loop retries (checking ``stop``)
        after the back-off, which doubles with each consecutive failure up to 30 s; a
        stop request cuts the back-off short.
        """
        try:
            await step()
            self._db_failures = 0
            return
        except TRANSIENT_ERRORS as exc:
            self._db_failures += 1
            log.warning(
                "database error; retrying: %s",
                exc,
                extra={"event": "engine.db_error", "attempt": self._db_failures},
            )
        except Exception:
            self._db_failures += 1
            log.exception("engine cycle failed", extra={"event": "engine.cycle_failed"})
        self._more_work = True  # after the back-off, retry at once: the work is still there
        if retry:
            exponent = self._db_failures - 1
            delay = min(MAX_ERROR_BACKOFF_SECONDS, FIRST_ERROR_BACKOFF_SECONDS * 2**exponent)
            await self._waker.wait(delay)

    async def _run_in_thread(self, ready: threading.Event) -> None:
        self._thread_loop = asyncio.get_running_loop()
        self._thread_stop = asyncio.Event()
        self._running = True  # run() sets it too; callers of start_background see it at once
        ready.set()
        await self.run(self._thread_stop)
