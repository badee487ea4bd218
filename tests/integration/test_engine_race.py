"""Replicas racing on one database: exactly-once firing and max_instances across engines."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from test_engine_helpers import SLOW, add_schedule, make_engine, open_store, runs_of

from duetime.clock import FakeClock
from duetime.engine import Engine
from duetime.models import RunKind
from duetime.store import claims
from duetime.store import tables as t

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SCHEDULES = 30
STEPS = 20


def _tick_in_threads(engines: list[Engine], extra: list[object]) -> list[BaseException]:
    """Tick every engine at the same moment, each in its own thread; return errors."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines) + len(extra))

    def tick(engine: Engine) -> None:
        try:
            barrier.wait()
            asyncio.run(engine.tick())
        except BaseException as exc:
            errors.append(exc)

    def fire(store: object) -> None:
        try:
            barrier.wait()
            claims.fire_due(store, now=engines[0].clock.now(), lookahead_seconds=0.0)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(e,)) for e in engines]
    threads += [threading.Thread(target=fire, args=(s,)) for s in extra]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_two_engines_and_a_check_schedules_fire_each_instant_exactly_once(db_url: str) -> None:
    clock = FakeClock(T0)
    with (
        open_store(db_url, clock) as s1,
        open_store(db_url, clock) as s2,
        open_store(db_url, clock) as s3,
    ):
        ids = [
            add_schedule(s1, f"s{i}", "* * * * * *", now=T0, overlap="buffer_all")
            for i in range(SCHEDULES)
        ]
        a, _ = make_engine(s1, clock, concurrency=50)
        b, _ = make_engine(s2, clock, concurrency=50)
        for _ in range(STEPS):
            clock.advance(1)
            assert _tick_in_threads([a, b], [s3]) == []
        for _ in range(3):  # let both drain whatever is still pending
            asyncio.run(a.tick())
            asyncio.run(b.tick())
        runs = [r for r in runs_of(s1) if r.kind is RunKind.SCHEDULED]
    fires = Counter((r.schedule_id, r.scheduled_for) for r in runs)
    assert max(fires.values()) == 1
    expected = {(sid, T0 + timedelta(seconds=k)) for sid in ids for k in range(1, STEPS + 1)}
    assert set(fires) == expected
    assert Counter(r.state.value for r in runs) == {"succeeded": len(runs)}


def test_max_instances_holds_across_racing_engines(db_url: str) -> None:
    clock = FakeClock(T0)
    with open_store(db_url, clock) as s1, open_store(db_url, clock) as s2:
        sid = add_schedule(
            s1, "one-at-a-time", "* * * * * *", now=T0, job=SLOW, overlap="buffer_all",
            max_instances=3,
        )  # fmt: skip
        a, _ = make_engine(s1, clock, concurrency=10)
        b, _ = make_engine(s2, clock, concurrency=10)
        for _ in range(10):
            clock.advance(1)
            assert _tick_in_threads([a, b], []) == []
            with s1.read() as conn:
                running = conn.execute(
                    sa.select(sa.func.count()).where(
                        t.runs.c.schedule_id == sid, t.runs.c.state == "running"
                    )
                ).scalar_one()
            assert running <= 3
        assert running == 3
