"""POST .../trigger and /action trigger: concurrent requests share one transaction (group
commit on one writer thread), each still answered on its own terms."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from api_helpers import API, Caller, assert_problem, new_schedule

from duetime.api.app import create_app
from duetime.keys import ApiKeyService
from duetime.scheduler import Scheduler
from duetime.store.sqlalchemy import RunRequest

WAIT_SECONDS = 10.0


class _HeldCommits:
    """Wrap the store's batch insert: record each batch's size; hold the first until told."""

    def __init__(self, scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        insert = scheduler.store.insert_schedule_runs

        def held(requests: Sequence[RunRequest]) -> list[Any]:
            self.sizes.append(len(requests))
            if len(self.sizes) == 1:
                self.entered.set()
                assert self.release.wait(WAIT_SECONDS)
            return insert(requests)

        monkeypatch.setattr(scheduler.store, "insert_schedule_runs", held)


async def _queued(app: Any, count: int) -> None:
    """Wait until ``count`` requests wait for the next batch."""
    async with asyncio.timeout(WAIT_SECONDS):
        while app.state.triggers.queued < count:
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_concurrent_triggers_share_one_transaction_and_keep_their_own_answers(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(scheduler)
    keys = ApiKeyService(scheduler.store)
    operator = {"Authorization": f"Bearer {keys.create('acme', 'operator').secret}"}
    other = {"Authorization": f"Bearer {keys.create('other', 'operator').secret}"}
    view = scheduler.for_tenant("acme")
    view.add_schedule("nightly", "duetime.sleep", "0 3 * * *", parameters={"seconds": 0})
    view.add_schedule("paused", "duetime.noop", "0 3 * * *")
    view.pause("paused")  # version 2; run-now still works on a paused schedule
    view.add_schedule("gone", "duetime.noop", "0 3 * * *")
    view.delete_schedule("gone")
    held = _HeldCommits(scheduler, monkeypatch)

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t" + API) as client:

            def post(path: str, headers: dict[str, str], **kw: Any) -> Any:
                return asyncio.ensure_future(client.post(path, headers=headers, **kw))

            first = post("/schedules/nightly/trigger", operator)
            await asyncio.to_thread(held.entered.wait, WAIT_SECONDS)  # the first batch is open
            rest = [
                post("/schedules/nightly/trigger", operator, json={"parameters": {"seconds": 1}}),
                post("/schedules/paused/trigger", {**operator, "If-Match": '"1"'}),
                post("/schedules/paused/action", operator, json={"action": "trigger"}),
                post("/schedules/gone/trigger", operator),
                post("/schedules/nightly/trigger", other),  # another tenant's: 404
                post(
                    "/schedules/nightly/trigger",
                    operator,
                    json={"parameters": {"seconds": "soon"}},
                ),
            ]
            await _queued(app, len(rest))
            held.release.set()
            return [await first, *[await r for r in rest]]

    first, override, stale, action, gone, foreign, invalid = asyncio.run(scenario())
    assert held.sizes == [1, 6]  # the six that came while the first was written: one batch
    assert first.status_code == 201
    assert first.json()["parameters"] == {"seconds": 0}
    assert override.status_code == 201
    assert override.json()["parameters"] == {"seconds": 1}
    assert assert_problem(stale, 412)["current_version"] == 2
    assert action.status_code == 201
    assert action.json()["kind"] == "manual"
    assert_problem(gone, 404)
    assert_problem(foreign, 404)
    assert_problem(invalid, 422, "parameters.seconds")
    created = {r.json()["id"] for r in (first, override, action)}
    listed = {run.id for run in scheduler.for_tenant("*").get_runs(limit=50).items}
    assert listed == created


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_trigger_waiting_for_its_schedule_holds_up_no_other(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run-now request has its own transaction on a worker thread: while one waits
    (here: held inside its insert), a trigger of another schedule is answered."""
    app = create_app(scheduler)
    secret = ApiKeyService(scheduler.store).create("acme", "operator").secret
    operator = {"Authorization": f"Bearer {secret}"}
    view = scheduler.for_tenant("acme")
    view.add_schedule("slow", "duetime.noop", "0 3 * * *")
    view.add_schedule("quick", "duetime.noop", "0 3 * * *")
    held = _HeldCommits(scheduler, monkeypatch)

    async def scenario() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t" + API) as client:
            slow = asyncio.ensure_future(client.post("/schedules/slow/trigger", headers=operator))
            await asyncio.to_thread(held.entered.wait, WAIT_SECONDS)
            quick = await client.post("/schedules/quick/trigger", headers=operator)
            assert not slow.done()
            held.release.set()
            return quick.status_code, (await slow).status_code

    assert asyncio.run(scenario()) == (201, 201)
    assert held.sizes == [1, 1]


def test_trigger_needs_a_live_key_and_the_operator_role(
    admin: Caller, make_caller: Any, client: Any, keys: ApiKeyService
) -> None:
    new_schedule(admin)
    viewer = make_caller("acme", "viewer")
    assert_problem(viewer.post("/schedules/nightly/trigger"), 403)
    created = keys.create("acme", "operator")
    operator = Caller(client, created.secret)
    assert operator.post("/schedules/nightly/trigger").status_code == 201
    keys.revoke(created.key.id)
    assert_problem(operator.post("/schedules/nightly/trigger"), 401)
    assert len(admin.get("/runs").json()["items"]) == 1


def test_trigger_by_expected_updated_at(admin: Caller) -> None:
    schedule = new_schedule(admin)
    stale = admin.post(
        "/schedules/nightly/trigger", json={"expected_updated_at": "2000-01-01T00:00:00Z"}
    )
    assert assert_problem(stale, 412)["current_version"] == 1
    ok = admin.post(
        "/schedules/nightly/trigger", json={"expected_updated_at": schedule["updated_at"]}
    )
    assert ok.status_code == 201, ok.text


def _waiting(task: asyncio.Task[Any]) -> bool:
    return not task.done() and task._fut_waiter is not None  # type: ignore[attr-defined]


def _held_lookups(
    app: Any, monkeypatch: pytest.MonkeyPatch, error: Exception | None = None
) -> tuple[list[int], threading.Event]:
    """Make the app's key lookups wait for ``release`` (then fail with ``error``, if any)."""
    keys: ApiKeyService = app.state.keys
    lookup = keys.lookup
    calls: list[int] = []
    release = threading.Event()

    def held(secret: str) -> Any:
        calls.append(1)
        assert release.wait(WAIT_SECONDS)
        if error is not None:
            raise error
        return lookup(secret)

    monkeypatch.setattr(keys, "lookup", held)
    return calls, release


async def _all_ask(app: Any, secret: str, count: int, release: threading.Event) -> list[Any]:
    tasks = [asyncio.ensure_future(app.state.auth.key(secret)) for _ in range(count)]
    async with asyncio.timeout(WAIT_SECONDS):  # the first looks up in a thread, all wait
        while not all(_waiting(t) for t in tasks):
            await asyncio.sleep(0.001)
    release.set()
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def test_concurrent_key_lookups_share_one_read(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    """After a commit every waiting request misses the key cache: one read serves them all
    (SQLite); without a data version (PostgreSQL) each request still reads its key."""
    app = create_app(scheduler)
    secret = ApiKeyService(scheduler.store).create("acme", "operator").secret
    calls, release = _held_lookups(app, monkeypatch)
    found = asyncio.run(_all_ask(app, secret, 5, release))
    assert [key.tenant for key in found] == ["acme"] * 5
    assert len(calls) == (1 if db_url.startswith("sqlite") else 5)


def test_a_failed_shared_key_lookup_fails_every_waiter(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy database is a 503 for every request that waited on the lookup, never a 401."""
    app = create_app(scheduler)
    secret = ApiKeyService(scheduler.store).create("acme", "operator").secret
    busy = sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))
    _calls, release = _held_lookups(app, monkeypatch, busy)
    results = asyncio.run(_all_ask(app, secret, 3, release))
    assert all(isinstance(result, sa.exc.OperationalError) for result in results)


def test_serve_freezes_the_startup_heap_before_serving(
    scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full collections skip the objects built before serving (their 45–80 ms pauses were
    the API's worst latencies under load)."""
    import gc

    from duetime.api import server

    frozen_when_serving: list[int] = []
    monkeypatch.setattr(
        server, "_run", lambda *_args: frozen_when_serving.append(gc.get_freeze_count())
    )
    try:
        server.serve(scheduler, port=0, with_engine=False)
    finally:
        gc.unfreeze()
    assert frozen_when_serving
    assert frozen_when_serving[0] > 10_000
