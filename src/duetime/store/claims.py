"""The engine's SQL: fire due schedules, claim runs, write outcomes, renew and recover leases.

Every function is one (or one per batch) write transaction through ``store.write()``:
PostgreSQL locks rows with ``FOR UPDATE [SKIP LOCKED]``; SQLite serialises writers with
``BEGIN IMMEDIATE``. The partial unique index ``uq_duetime_runs_scheduled_fire`` backs the
exactly-once invariant: a duplicate fire is skipped (``ON CONFLICT DO NOTHING``), never an
error. Every instant comes from the caller's ``now`` (on PostgreSQL the engine's clock is
corrected to the database's ``now()``).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from duetime import planning
from duetime.errors import ValidationError
from duetime.executors.base import Outcome
from duetime.models import ACTIVE_RUN_STATES, Overlap, Run, RunKind, RunState, Schedule
from duetime.store import tables as t
from duetime.store.bulk import BulkStatement, insert_statement, update_statement
from duetime.store.rows import (
    DUE_FIELDS,
    due_schedule_reader,
    new_run_values,
    new_uuid,
    resolve_run_settings,
    row_to_run,
    row_to_schedule,
    run_from_insert,
)
from duetime.store.sqlalchemy import TRUSTED_OPTION
from duetime.triggers.base import Trigger
from duetime.triggers.spec import build_trigger

if TYPE_CHECKING:
    from duetime.store.sqlalchemy import SQLAlchemyStore

log = logging.getLogger(__name__)

#: Error type an executor reports for runs it stopped at shutdown (recovered, no attempt used).
INTERRUPTED = "Interrupted"

#: Error type of runs whose lease expired (their worker died or lost the database), also
#: reported by the process executor when a worker process dies under a run.
WORKER_LOST = "WorkerLost"

#: Failures that are the platform's fault, not the job's: recovered without using an attempt.
_RECOVERABLE_ERRORS = frozenset({INTERRUPTED, WORKER_LOST})

#: States a run may end in after it ran.
_OUTCOME_STATES = (RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT, RunState.CANCELLED)

_ACTIVE = [s.value for s in ACTIVE_RUN_STATES]

#: The predicates of the partial indexes, spelled as literals: SQLite only uses a partial
#: index when the query repeats its WHERE term verbatim (a bound parameter does not match).
PENDING = sa.text("duetime_runs.state = 'pending'")
RUNNING = sa.text("duetime_runs.state = 'running'")
#: Matches the partial index ``ix_duetime_runs_cancel_requested`` word for word.
RUNNING_CANCEL_REQUESTED = sa.text(
    "duetime_runs.state = 'running' AND duetime_runs.cancel_requested = true"
)
LIVE_ACTIVE = sa.text("duetime_schedules.state = 'active' AND duetime_schedules.deleted_at IS NULL")

#: Pending runs read per free slot (some may be held back by their schedule's max_instances).
CANDIDATES_PER_SLOT = 2
#: Reads of candidates per claim at most. A read whose runs were all held back by their
#: schedules' max_instances is followed by one that skips those schedules, so a backlog of
#: one schedule never hides the runs of others behind it.
CLAIM_ROUNDS = 4


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def _locked(dialect: str, query: sa.Select[Any], *, skip: bool) -> sa.Select[Any]:
    """Add ``FOR UPDATE [SKIP LOCKED]`` on PostgreSQL (SQLite's BEGIN IMMEDIATE suffices)."""
    if dialect == "postgresql":
        return query.with_for_update(skip_locked=skip)
    return query


def _instant(name: str) -> sa.BindParameter[Any]:
    """A bound instant compared with the runs' and schedules' UTCDateTime columns."""
    return sa.bindparam(name, type_=t.runs.c.available_at.type)


def _insert_runs(
    store: SQLAlchemyStore, conn: sa.Connection, values: list[dict[str, Any]]
) -> list[Run]:
    """Insert runs; a duplicate ``scheduled`` fire is skipped. Return the inserted runs."""
    if not values:
        return []
    count = _RUN_INSERT(store.dialect).execute(conn, values)
    if count == len(values):
        return [run_from_insert(v) for v in values]
    log.info("duplicate fires skipped", extra={"event": "fire.duplicate_skipped"})
    ids = [v["id"] for v in values]
    inserted = set(conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id.in_(ids))).scalars())
    return [run_from_insert(v) for v in values if v["id"] in inserted]


#: INSERT of full run rows; a second ``scheduled`` run of one fire is skipped (the partial
#: unique index arbitrates), and the row count tells whether any was.
_RUN_INSERT = functools.cache(
    lambda dialect: insert_statement(
        t.runs,
        dialect,
        conflict=f"ON CONFLICT (schedule_id, scheduled_for) WHERE kind = "
        f"'{RunKind.SCHEDULED.value}' DO NOTHING",
    )
)


# --------------------------------------------------------------------------- fire


def _job_defaults(conn: sa.Connection, jobs: Iterable[str]) -> dict[str, Mapping[str, Any]]:
    """Return the published ``@job`` defaults (timeout, max_attempts) of ``jobs``."""
    names = sorted(set(jobs))
    if not names:
        return {}
    jt = t.job_types.c
    rows = conn.execute(sa.select(jt.name, jt.timeout, jt.max_attempts).where(jt.name.in_(names)))
    return {row.name: {"timeout": row.timeout, "max_attempts": row.max_attempts} for row in rows}


def _active_counts(conn: sa.Connection, schedule_ids: Sequence[str]) -> dict[str, int]:
    """Return running + pending run counts per schedule."""
    if not schedule_ids:
        return {}
    rows = conn.execute(
        sa.select(t.runs.c.schedule_id, sa.func.count())
        .where(t.runs.c.schedule_id.in_(schedule_ids), t.runs.c.state.in_(_ACTIVE))
        .group_by(t.runs.c.schedule_id)
    )
    return {row[0]: int(row[1]) for row in rows}


@dataclass
class _FireContext:
    """What one fire batch shares: its connection, instant and job defaults."""

    store: SQLAlchemyStore
    conn: sa.Connection
    now: datetime
    lookahead_seconds: float
    defaults: dict[str, Mapping[str, Any]]
    registry: Any
    advances: list[dict[str, Any]] = field(default_factory=list)
    trigger_texts: dict[str, str] = field(default_factory=dict)  # by schedule id


def _run_values(
    ctx: _FireContext,
    schedule: Schedule,
    *,
    kind: RunKind,
    scheduled_for: datetime,
    available: datetime,
    state: RunState = RunState.PENDING,
    **extra: Any,
) -> dict[str, Any]:
    """Return the insert dict of a run of ``schedule`` with its resolved settings."""
    job_type = ctx.registry.find(schedule.job) if ctx.registry is not None else None
    source = job_type if job_type is not None else ctx.defaults.get(schedule.job)
    settings = resolve_run_settings(schedule, source)
    return new_run_values(
        schedule=schedule,
        tenant=schedule.tenant,
        job=schedule.job,
        parameters=schedule.parameters,
        kind=kind,
        scheduled_for=scheduled_for,
        available_at=available,
        now=ctx.now,
        max_attempts=settings["max_attempts"],
        timeout=settings["timeout"],
        priority=schedule.priority,
        executor=schedule.executor,
        max_recoveries=schedule.max_recoveries,
        retry_backoff=schedule.retry_backoff,
        state=state,
        **extra,
    )


def _plan(
    ctx: _FireContext, schedule: Schedule, active: int
) -> tuple[planning.FirePlan, float] | None:
    """Plan the schedule's due fires (and return its jitter); None when its trigger is broken."""
    assert schedule.next_run_at is not None
    try:
        trigger = _built_trigger(
            ctx.trigger_texts[schedule.id], schedule.timezone, schedule.start_date,
            schedule.end_date,
        )  # fmt: skip
    except ValidationError as exc:
        log.error(
            "schedule trigger cannot be built: %s",
            exc,
            extra={"event": "schedule.trigger_invalid", "schedule_id": schedule.id},
        )
        return None
    plan = planning.plan_fires(
        trigger,
        next_run_at=schedule.next_run_at,
        now=ctx.now,
        lookahead_seconds=_lookahead_for(ctx, schedule, active),
        misfire_grace_time=schedule.misfire_grace_time,
        coalesce=schedule.coalesce,
    )
    return plan, float(getattr(trigger, "jitter", 0.0) or 0.0)


@functools.lru_cache(maxsize=4096)
def _built_trigger(
    text: str, timezone: str, start_at: datetime | None, end_at: datetime | None
) -> Trigger:
    """Build a trigger once per distinct (stored JSON text, zone, start, end).

    Triggers are immutable, so one is shared by every schedule of that shape and across
    cycles.
    """
    return build_trigger(json.loads(text), timezone, start_at=start_at, end_at=end_at)


def _lookahead_for(ctx: _FireContext, schedule: Schedule, active: int) -> float:
    """Fire ahead only a schedule with no active run and no backlog (which makes one).

    Overlap is judged at the fire instant; the engine wakes at it for held-back fires.
    ``buffer_all`` keeps every fire whatever is active, so it may always fire ahead.
    """
    assert schedule.next_run_at is not None
    if schedule.overlap is Overlap.BUFFER_ALL:
        return ctx.lookahead_seconds
    if active > 0 or schedule.next_run_at <= ctx.now:
        return 0.0
    return ctx.lookahead_seconds


def _fire_schedule(ctx: _FireContext, schedule: Schedule, active: int) -> list[dict[str, Any]]:
    """Plan one schedule's fires, advance its ``next_run_at``; return the run rows to insert."""
    planned = _plan(ctx, schedule, active)
    if planned is None:
        _advance(ctx, schedule, None, completed=False)
        return []
    plan, jitter = planned
    values = _missed_values(ctx, schedule, plan.missed)
    decision = planning.decide_overlap(
        schedule.overlap,
        max_instances=schedule.max_instances,
        active=active,
        new_fires=len(plan.run_fires),
    )
    for fire, state in zip(plan.run_fires, decision.states, strict=True):
        values.append(_fire_values(ctx, schedule, fire, state, jitter))
    if decision.replace_count:
        _replace(ctx, schedule, decision.replace_count)
    _advance(ctx, schedule, plan.next_run_at, completed=plan.completed)
    return values


def _fire_values(
    ctx: _FireContext, schedule: Schedule, fire: datetime, state: RunState, jitter: float
) -> dict[str, Any]:
    """Return the row of one fire: a pending run, or a ``skipped`` record."""
    available = planning.available_at(schedule.id, fire, jitter)
    extra: dict[str, Any] = {}
    if state is RunState.SKIPPED:
        extra["finished_at"] = ctx.now
    return _run_values(
        ctx,
        schedule,
        kind=RunKind.SCHEDULED,
        scheduled_for=fire,
        available=available,
        state=state,
        **extra,
    )


def _missed_values(
    ctx: _FireContext, schedule: Schedule, missed: planning.MissedFires | None
) -> list[dict[str, Any]]:
    """Return the one ``missed`` row standing for every fire outside the grace."""
    if missed is None:
        return []
    return [
        _run_values(
            ctx,
            schedule,
            kind=RunKind.SCHEDULED,
            scheduled_for=missed.first,
            available=missed.first,
            state=RunState.MISSED,
            finished_at=ctx.now,
            missed_count=missed.count,
            missed_until=missed.last,
        )
    ]


def _advance(
    ctx: _FireContext, schedule: Schedule, next_run_at: datetime | None, *, completed: bool
) -> None:
    """Queue the schedule's next fire (``completed`` when there is none) for one batch write."""
    state = "completed" if completed else schedule.state.value
    ctx.advances.append({"b_id": schedule.id, "b_next": next_run_at, "b_state": state})


def _schedule_update(**set_columns: str) -> Callable[[str], BulkStatement]:
    """A batch UPDATE of schedules by id (``b_id``) setting ``column=row_key`` (per dialect)."""
    return functools.cache(
        lambda dialect: update_statement(
            t.schedules, dialect, set_columns=set_columns, where_columns={"id": "b_id"}
        )
    )


_ADVANCE = _schedule_update(next_run_at="b_next", state="b_state")


def _replace(ctx: _FireContext, schedule: Schedule, count: int) -> None:
    """Evict ``count`` active runs: request cancel of the oldest running, else cancel pending."""
    runs = t.runs.c
    victims = ctx.conn.execute(
        sa.select(runs.id, runs.state)
        .where(
            runs.schedule_id == schedule.id,
            runs.state.in_(_ACTIVE),
            runs.cancel_requested.is_(False),
        )
        .order_by(sa.case((runs.state == "running", 0), else_=1), runs.created_at)
        .limit(count)
    ).all()
    for victim in victims:
        if victim.state == RunState.RUNNING.value:
            values: dict[str, Any] = {"cancel_requested": True}
        else:
            values = {"state": RunState.CANCELLED.value, "finished_at": ctx.now}
        ctx.conn.execute(sa.update(t.runs).where(runs.id == victim.id).values(values))
        log.info(
            "run replaced by a newer fire",
            extra={"event": "run.replaced", "run_id": victim.id, "schedule_id": schedule.id},
        )


def _due_schedules(
    store: SQLAlchemyStore,
    conn: sa.Connection,
    now: datetime,
    horizon: datetime,
    batch_size: int,
) -> list[tuple[Schedule, str]]:
    """Lock and return a batch of due schedules (and trigger texts), by priority, next_run_at.

    A fire within the lookahead (after ``now``) is made early only for a schedule with no
    pending or running run: overlap is judged at the fire instant, and a run still active
    a moment before it may well be done by then (the engine wakes at the instant itself).
    Read in three segments — priority above 0, equal to 0, below 0 — so that the default
    priority is one range scan in next_run_at order that stops at the batch, not a sort
    of every due schedule (see :func:`_due_queries`).
    """
    params: dict[str, Any] = {"now": now, "horizon": horizon}
    found: list[tuple[Schedule, str]] = []
    for query in _DUE_QUERIES(store.dialect):
        if len(found) >= batch_size:
            break
        result = conn.execute(query, {**params, "batch": batch_size - len(found)})
        found.extend(_READ_DUE(row) for row in result)
    return found


#: The non-default priorities, spelled as the partial index ix_duetime_schedules_due_prioritized
#: spells them: SQLite uses a partial index only when the query repeats its WHERE terms.
_PRIORITIZED = sa.text("duetime_schedules.priority != 0")


def _due_queries(dialect: str) -> list[sa.Select[Any]]:
    """The due-schedules segments, built once per dialect (every engine cycle runs them).

    Priority 0 (the default) is read from ``ix_duetime_schedules_due`` (next_run_at,
    priority) in index order and stops at the batch; the few schedules of another priority
    come from ``ix_duetime_schedules_due_prioritized`` (migrations 0005 and 0006;
    searched by next_run_at too, then sorted: only the due ones). Before, one query
    sorted every due schedule's row for each batch: 50,000 due at once (a catch-up after
    downtime) cost about 11 ms a batch on SQLite.
    """
    s, r = t.schedules.c, t.runs.c
    active = (
        sa.select(r.id)
        .where(r.schedule_id == s.id, r.state.in_(_ACTIVE))
        .correlate(t.schedules)
        .exists()
    )
    horizon = sa.bindparam("horizon", type_=s.next_run_at.type)
    ahead_ok = sa.or_(s.overlap == Overlap.BUFFER_ALL.value, ~active)
    due: list[Any] = [
        LIVE_ACTIVE,
        # due by the horizon as a condition of its own (not inside the OR): the read is
        # then a range search; with it only inside the OR, SQLite scanned every active
        # schedule (100,000 schedules, 100 due: 13.7 -> 0.27 ms)
        s.next_run_at <= horizon,
        sa.or_(s.next_run_at <= _instant("now"), ahead_ok),
    ]
    segments: list[tuple[list[Any], list[Any]]] = [
        ([_PRIORITIZED, s.priority > 0], [s.priority.desc(), s.next_run_at]),
        ([s.priority == 0], [s.next_run_at]),
        ([_PRIORITIZED, s.priority < 0], [s.priority.desc(), s.next_run_at]),
    ]
    return [
        _locked(
            dialect,
            sa.select(*_DUE_COLUMNS)
            .where(*due, *where)
            .order_by(*order)
            .limit(sa.bindparam("batch", type_=sa.Integer)),
            skip=True,
        )
        for where, order in segments
    ]


#: What firing reads of a due schedule; its JSON as text (decoded once per distinct text).
_DUE_COLUMNS = [
    sa.cast(t.schedules.c[name], sa.Text).label(name)
    if name in ("trigger", "parameters")
    else t.schedules.c[name]
    for name in DUE_FIELDS
]
_DUE_QUERIES = functools.cache(_due_queries)
#: Every segment selects :data:`_DUE_COLUMNS` (DUE_FIELDS, in order): one reader for all.
_READ_DUE = due_schedule_reader(DUE_FIELDS)


@dataclass
class DirectClaim:
    """Start fires due now at once: claimed by ``worker`` in the fire's own transaction.

    ``slots`` (decremented as runs are claimed) is the engine's free room after it claimed
    every waiting run, so nothing already pending is overtaken. Only a schedule with no
    active run qualifies (its ``max_instances`` room is then certain); other fires stay
    ``pending`` for the ordinary claim.
    """

    worker: str
    slots: int
    lease_seconds: float
    until: datetime | None = None  # also claim runs available up to this instant (ahead)
    #: Fire no more schedules than ``slots`` can take; leave the rest due for a later cycle
    #: (an engine busy with short runs has room again within moments).
    only_what_starts: bool = False


def _claim_at_fire(
    values: list[dict[str, Any]],
    due: Sequence[Schedule],
    counts: Mapping[str, int],
    now: datetime,
    claim: DirectClaim,
) -> None:
    """Mark the pending rows of ``values`` that may start now ``running`` under ``claim``."""
    room = {s.id: s.max_instances for s in due if counts.get(s.id, 0) == 0}
    expires = now + timedelta(seconds=claim.lease_seconds)
    until = max(now, claim.until or now)
    for row in values:
        if claim.slots <= 0:
            return
        sid = row["schedule_id"]
        if row["state"] != RunState.PENDING.value or row["available_at"] > until:
            continue
        if room.get(sid, 0) <= 0:
            continue
        room[sid] -= 1
        claim.slots -= 1
        row.update(
            state=RunState.RUNNING.value,
            worker=claim.worker,
            lease_token=new_uuid(),
            lease_expires_at=expires,
            started_at=now,
            lateness_ms=max(0, _ms(now - row["available_at"])),
        )


def fire_due(
    store: SQLAlchemyStore,
    *,
    now: datetime,
    lookahead_seconds: float,
    batch_size: int = 500,
    max_batches: int | None = None,
    registry: Any = None,
    claim: DirectClaim | None = None,
) -> list[Run]:
    """Fire every due schedule (DESIGN §3.1 step 1, §3.2, §3.3); return the rows created.

    With ``claim``, runs due now are created already started (see :class:`DirectClaim`).
    """
    created: list[Run] = []
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        size = batch_size
        if claim is not None and claim.only_what_starts:
            size = min(batch_size, claim.slots)
            if size <= 0:
                break
        fired, full = _fire_batch(store, now, lookahead_seconds, size, registry, claim)
        created.extend(fired)
        if not full:
            break
    return created


def _fire_batch(
    store: SQLAlchemyStore,
    now: datetime,
    lookahead_seconds: float,
    batch_size: int,
    registry: Any,
    claim: DirectClaim | None = None,
) -> tuple[list[Run], bool]:
    """Fire one batch in one transaction; return its rows and whether the batch was full."""
    horizon = now + timedelta(seconds=lookahead_seconds)
    with store.write() as conn:
        found = _due_schedules(store, conn, now, horizon, batch_size)
        if not found:
            return [], False
        due = [schedule for schedule, _ in found]
        ctx = _FireContext(
            store, conn, now, lookahead_seconds, _job_defaults(conn, (s.job for s in due)), registry
        )
        ctx.trigger_texts = {schedule.id: text for schedule, text in found}
        counts = _active_counts(conn, [s.id for s in due])
        values: list[dict[str, Any]] = []
        for schedule in due:
            values.extend(_fire_schedule(ctx, schedule, counts.get(schedule.id, 0)))
        if claim is not None and claim.slots > 0:
            _claim_at_fire(values, due, counts, now, claim)
        _ADVANCE(store.dialect).execute(conn, ctx.advances)
        created = _insert_runs(store, conn, values)
        store.changed(conn)
    return created, len(due) == batch_size


# --------------------------------------------------------------------------- claim


def _pending_candidates(
    store: SQLAlchemyStore,
    conn: sa.Connection,
    now: datetime,
    limit: int,
    skip: Collection[str] = (),
) -> list[_Candidate]:
    """Lock (skip locked) pending runs that may start, by priority then available_at.

    Read in three segments — priority above 0, equal to 0 (the default: one index range
    scan in available_at order, no sort of the whole backlog), below 0 — so the common case
    stays cheap with a deep backlog (index ``ix_duetime_runs_claim_priority``). Only ids are
    read here: a backlog held back by ``max_instances`` (hundreds of runs of one schedule)
    is read again every cycle, and whole rows of it cost more than the claim itself.
    With ``skip``, only runs of other schedules are read (none without a schedule).
    """
    found: list[_Candidate] = []
    params: dict[str, Any] = {"now": now, "skip": sorted(skip)} if skip else {"now": now}
    for query in _CANDIDATE_QUERIES(store.dialect, bool(skip)):
        if len(found) >= limit:
            break
        rows = conn.execute(query, {**params, "limit": limit - len(found)})
        found.extend(_Candidate(row.id, row.schedule_id) for row in rows)
    return found


def _candidate_queries(dialect: str, skipping: bool) -> list[sa.Select[Any]]:
    """The three segments of :func:`_pending_candidates`, built once per dialect."""
    r = t.runs.c
    skipped = [r.schedule_id.not_in(sa.bindparam("skip", expanding=True))] if skipping else []
    segments: list[tuple[Any, list[Any]]] = [
        (r.priority > 0, [r.priority.desc(), r.available_at]),
        (r.priority == 0, [r.available_at]),
        (r.priority < 0, [r.priority.desc(), r.available_at]),
    ]
    return [
        _locked(
            dialect,
            sa.select(r.id, r.schedule_id)
            .where(PENDING, r.available_at <= _instant("now"), condition, *skipped)
            .order_by(*order)
            .limit(sa.bindparam("limit", type_=sa.Integer)),
            skip=True,
        )
        for condition, order in segments
    ]


_CANDIDATE_QUERIES = functools.cache(_candidate_queries)


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A pending run that may start (locked on PostgreSQL): its id and schedule."""

    id: str
    schedule_id: str | None


def _full_runs(conn: sa.Connection, chosen: list[_Candidate]) -> list[Run]:
    """The chosen runs as models, in the chosen order."""
    if not chosen:
        return []
    rows = conn.execute(sa.select(t.runs).where(t.runs.c.id.in_([c.id for c in chosen])))
    by_id = {row.id: row for row in rows}
    return [row_to_run(by_id[c.id]) for c in chosen]


def _instance_room(
    store: SQLAlchemyStore,
    conn: sa.Connection,
    schedule_ids: Sequence[str],
    *,
    skip_locked: bool = False,
) -> dict[str, int]:
    """Lock the schedules (id order) and return how many more runs each may run now.

    With ``skip_locked``, a schedule locked elsewhere has no room (0).
    """
    if not schedule_ids:
        return {}
    s = t.schedules.c
    query = sa.select(s.id, s.max_instances).where(s.id.in_(schedule_ids)).order_by(s.id)
    limits = {
        row.id: int(row.max_instances)
        for row in conn.execute(_locked(store.dialect, query, skip=skip_locked))
    }
    if skip_locked:
        limits = {sid: limits.get(sid, 0) for sid in schedule_ids}
    r = t.runs.c
    running = conn.execute(
        sa.select(r.schedule_id, sa.func.count())
        .where(r.schedule_id.in_(schedule_ids), r.state == RunState.RUNNING.value)
        .group_by(r.schedule_id)
    )
    counts = {row[0]: int(row[1]) for row in running}
    return {sid: limit - counts.get(sid, 0) for sid, limit in limits.items()}


def claim_runs(
    store: SQLAlchemyStore,
    *,
    now: datetime,
    worker: str,
    slots: int,
    lease_seconds: float,
    until: datetime | None = None,
    read_past: bool = True,
) -> list[Run]:
    """Start up to ``slots`` pending runs within each schedule's ``max_instances`` (step 2).

    ``until`` (default ``now``) also claims runs available up to that instant: the engine
    hands them to its executor at their ``available_at`` (docs/decisions/0008). Without
    ``read_past`` only one read of candidates is made (see CLAIM_ROUNDS): reading past a
    held-back backlog walks all of it, and the engine does that only now and then.
    """
    if slots <= 0:
        return []
    until = max(now, until or now)
    rounds = CLAIM_ROUNDS if read_past else 1
    with store.write() as conn:
        runs = _full_runs(conn, _choose(store, conn, until, slots, rounds))
        # no change signal: a claim only takes work away from other engines
        return _start(conn, runs, now=now, worker=worker, lease_seconds=lease_seconds)


def _choose(
    store: SQLAlchemyStore, conn: sa.Connection, until: datetime, slots: int, rounds: int
) -> list[_Candidate]:
    """Up to ``slots`` candidates within their schedules' room, read in rounds.

    A round that filled no slot for lack of room reads again past the schedules it saw
    (CLAIM_ROUNDS). Later rounds lock their schedules with SKIP LOCKED: locks taken out of
    id order could deadlock with another engine's claim, and a schedule another engine is
    claiming for has no room to spare for us this cycle.
    """
    chosen: list[_Candidate] = []
    room: dict[str, int] = {}
    for round_ in range(rounds):
        wanted = slots - len(chosen)
        limit = wanted * CANDIDATES_PER_SLOT
        candidates = _pending_candidates(store, conn, until, limit, skip=room)
        new = sorted({c.schedule_id for c in candidates if c.schedule_id} - room.keys())
        room.update(_instance_room(store, conn, new, skip_locked=round_ > 0))
        chosen.extend(_within_limits(candidates, room, wanted))
        if len(chosen) >= slots or len(candidates) < limit:
            break  # every slot taken, or nothing more is pending
    return chosen


def _within_limits(
    candidates: list[_Candidate], room: dict[str, int], slots: int
) -> list[_Candidate]:
    """Pick candidates in order, at most ``slots``, none beyond its schedule's room."""
    chosen: list[_Candidate] = []
    for run in candidates:
        if len(chosen) >= slots:
            break
        if run.schedule_id is not None and run.schedule_id in room:
            if room[run.schedule_id] <= 0:
                continue
            room[run.schedule_id] -= 1
        chosen.append(run)
    return chosen


_START = (
    sa.update(t.runs)
    .where(t.runs.c.id == sa.bindparam("b_id"))
    .values(
        state=RunState.RUNNING.value,
        worker=sa.bindparam("b_worker"),
        lease_token=sa.bindparam("b_token"),
        lease_expires_at=sa.bindparam("b_expires", type_=t.runs.c.lease_expires_at.type),
        started_at=sa.bindparam("b_started", type_=t.runs.c.started_at.type),
        lateness_ms=sa.bindparam("b_lateness"),
    )
    .execution_options(**{TRUSTED_OPTION: True})
)


def _start(
    conn: sa.Connection, runs: list[Run], *, now: datetime, worker: str, lease_seconds: float
) -> list[Run]:
    """Mark runs running with fresh lease tokens (one batched UPDATE); return them started."""
    if not runs:
        return []
    expires = now + timedelta(seconds=lease_seconds)
    params: list[dict[str, Any]] = [
        {
            "b_id": run.id,
            "b_worker": worker,
            "b_token": new_uuid(),
            "b_expires": expires,
            "b_started": now,
            "b_lateness": max(0, _ms(now - run.available_at)),
        }
        for run in runs
    ]
    conn.execute(_START, params)
    return [
        replace(
            run,
            state=RunState.RUNNING,
            worker=worker,
            lease_token=p["b_token"],
            lease_expires_at=expires,
            started_at=now,
            lateness_ms=p["b_lateness"],
        )
        for run, p in zip(runs, params, strict=True)
    ]


# --------------------------------------------------------------------------- finish


def _outcome_values(outcome: Outcome, row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Return the columns an outcome writes (a cancel request turns failures into cancelled)."""
    state = outcome.state
    if row["cancel_requested"] and state is not RunState.SUCCEEDED:
        state = RunState.CANCELLED
    finished = outcome.finished_at or now
    # the executor's start is the real one (a prefetched run was claimed a moment earlier)
    started = outcome.started_at or row["started_at"] or finished
    lateness = row["lateness_ms"]
    if outcome.started_at is not None and row["available_at"] is not None:
        lateness = max(0, _ms(outcome.started_at - row["available_at"]))
    return {
        "state": state.value,
        "started_at": started,
        "lateness_ms": lateness,
        "finished_at": finished,
        "duration_ms": max(0, _ms(finished - started)),
        "result": outcome.result if state is RunState.SUCCEEDED else None,
        "error": outcome.error.to_dict() if outcome.error else None,
    }


@dataclass(frozen=True, slots=True)
class _Finished:
    """A run whose outcome was written, with the stored columns the Run model omits."""

    run: Run
    max_recoveries: int
    retry_backoff: float
    schedule_name: str | None


@dataclass(frozen=True, slots=True)
class _Written:
    """An accepted outcome as written: the columns it set and its run's fence row."""

    values: dict[str, Any]
    current: Mapping[str, Any]

    @property
    def run_id(self) -> str:
        """The run's id."""
        run_id: str = self.current["id"]
        return run_id

    @property
    def schedule_id(self) -> str | None:
        """The run's schedule (None for a run of no schedule)."""
        schedule_id: str | None = self.current["schedule_id"]
        return schedule_id


_FENCE_COLUMNS = (
    "id", "state", "lease_token", "cancel_requested", "started_at", "available_at",
    "lateness_ms", "schedule_id",
)  # fmt: skip
#: What follow-ups need of each run's schedule, read in the same query (outer join).
_REF_COLUMNS = ("s_tenant", "s_state", "s_deleted", "s_chain")


def _current_rows(
    store: SQLAlchemyStore, conn: sa.Connection, run_ids: Sequence[str]
) -> dict[str, Mapping[str, Any]]:
    """Read (and on PostgreSQL lock) what fencing needs of the runs about to be finished.

    Only these few columns, and what follow-ups need of each run's schedule (one query,
    not a second read by schedule id): whole rows (parameters, results) are read later
    for the runs that get follow-ups, not for every success.
    """
    rows = conn.execute(_FENCE_QUERY(store.dialect), {"ids": list(run_ids)})
    names = _FENCE_COLUMNS + _REF_COLUMNS
    return {row[0]: dict(zip(names, row, strict=True)) for row in rows}  # id first


def _fence_query(dialect: str) -> sa.Select[Any]:
    """The fence read of :func:`_current_rows`, built once per dialect."""
    r, s = t.runs.c, t.schedules.c
    query = (
        sa.select(
            *(r[name] for name in _FENCE_COLUMNS),
            s.tenant.label("s_tenant"),
            s.state.label("s_state"),
            s.deleted_at.is_not(None).label("s_deleted"),
            sa.cast(s.chain, sa.Text).label("s_chain"),
        )
        .select_from(t.runs.outerjoin(t.schedules, s.id == r.schedule_id))
        .where(r.id.in_(sa.bindparam("ids", expanding=True)))
        .order_by(r.id)
    )
    if dialect == "postgresql":  # lock the runs only: schedules are locked by fires, in order
        return query.with_for_update(of=t.runs)
    return query


_FENCE_QUERY = functools.cache(_fence_query)


@dataclass(frozen=True, slots=True)
class FinishResult:
    """What :func:`finish_runs` wrote: the accepted runs and the follow-ups it created."""

    run_ids: list[str]
    follow_ups: int


def finish_runs(
    store: SQLAlchemyStore, outcomes: Sequence[Outcome], *, now: datetime, registry: Any = None
) -> FinishResult:
    """Write outcomes fenced by lease token; create retries, recoveries and chain fires.

    Returns the ids of the runs whose outcome was accepted (a stale token changes nothing)
    and how many follow-up runs were created.
    """
    if not outcomes:
        return FinishResult([], 0)
    follow_ups = 0
    with store.write() as conn:
        current = _current_rows(store, conn, sorted({o.run_id for o in outcomes}))
        accepted = _fenced(outcomes, current)
        written = _write_outcomes(store, conn, accepted, now)
        if written:
            follow_ups = _follow_ups(store, conn, written, now, registry)
            store.changed(conn)
    return FinishResult([w.run_id for w in written], follow_ups)


def _fenced(
    outcomes: Sequence[Outcome], current: Mapping[str, Mapping[str, Any]]
) -> list[tuple[Outcome, Mapping[str, Any]]]:
    """Keep outcomes whose lease token is still their run's (one per run); log the rest."""
    accepted: dict[str, tuple[Outcome, Mapping[str, Any]]] = {}
    for outcome in outcomes:
        row = current.get(outcome.run_id)
        fresh = (
            row is not None
            and row["state"] == RunState.RUNNING.value
            and row["lease_token"] == outcome.lease_token
            and outcome.state in _OUTCOME_STATES
        )
        if row is not None and fresh and outcome.run_id not in accepted:
            accepted[outcome.run_id] = (outcome, row)
        else:
            log.warning(
                "stale outcome ignored (lease token no longer current)",
                extra={"event": "run.stale_outcome", "run_id": outcome.run_id},
            )
    return list(accepted.values())


_RUNNING = RunState.RUNNING.value
_OUTCOME_COLUMNS = (
    "state", "started_at", "lateness_ms", "finished_at", "duration_ms", "result", "error",
)  # fmt: skip

#: The outcome UPDATE of one running run, fenced by its lease token.
_FINISH = functools.cache(
    lambda dialect: update_statement(
        t.runs,
        dialect,
        set_columns={name: name for name in _OUTCOME_COLUMNS},
        # the expected state is a parameter, not a literal: a literal lets PostgreSQL's
        # generic plan of the prepared statement scan the partial index of running runs
        where_columns={"id": "b_id", "lease_token": "b_token", "state": "b_was"},
    )
)


def _write_outcomes(
    store: SQLAlchemyStore,
    conn: sa.Connection,
    accepted: list[tuple[Outcome, Mapping[str, Any]]],
    now: datetime,
) -> list[_Written]:
    """Write every accepted outcome in one batched, token-fenced UPDATE."""
    if not accepted:
        return []
    written: list[_Written] = []
    params: list[dict[str, Any]] = []
    for outcome, row in accepted:
        values = _outcome_values(outcome, row, now)
        params.append(
            {**values, "b_id": outcome.run_id, "b_token": outcome.lease_token, "b_was": _RUNNING}
        )
        written.append(_Written(values, row))
    _FINISH(store.dialect).execute(conn, params)
    return written


def _finished(row: Mapping[str, Any]) -> _Finished:
    return _Finished(
        run=row_to_run(row),
        max_recoveries=int(row["max_recoveries"]),
        retry_backoff=float(row["retry_backoff"]),
        schedule_name=row.get("schedule_name"),
    )


@dataclass(frozen=True, slots=True)
class _ScheduleRef:
    """What follow-ups need of a finished run's schedule."""

    id: str
    tenant: str
    state: str
    deleted: bool
    chain: list[str]


def _schedule_refs(written: Sequence[_Written]) -> dict[str, _ScheduleRef]:
    """The schedules of ``written`` runs, as the fence read found them (one per schedule)."""
    refs: dict[str, _ScheduleRef] = {}
    for w in written:
        row = w.current
        sid = w.schedule_id
        if sid is None or sid in refs or row["s_state"] is None:  # no schedule, or it is gone
            continue
        refs[sid] = _ScheduleRef(
            sid, row["s_tenant"], row["s_state"], bool(row["s_deleted"]), _chain_of(row["s_chain"])
        )
    return refs


def _chain_of(text: str | None) -> list[str]:
    """The stored chain (JSON text), without a decode for the usual empty one."""
    if text is None or text == "[]":
        return []
    return list(json.loads(text) or [])


def _follow_ups(
    store: SQLAlchemyStore,
    conn: sa.Connection,
    written: list[_Written],
    now: datetime,
    registry: Any,
) -> int:
    """Update schedules' last run, then insert retries, recoveries and chain fires (count).

    Whole rows are read only for the runs that may get a follow-up: failures (retries,
    recoveries) and successes of schedules with a chain.
    """
    schedules = _schedule_refs(written)
    _touch_schedules(store, conn, written)
    candidates = [w for w in written if _may_follow(w, schedules)]
    if not candidates:
        return 0
    rows = conn.execute(sa.select(t.runs).where(t.runs.c.id.in_([w.run_id for w in candidates])))
    full = {row.id: _finished(row._asdict()) for row in rows}
    values: list[dict[str, Any]] = []
    for candidate in candidates:
        done = full[candidate.run_id]
        run = done.run
        schedule = schedules.get(run.schedule_id) if run.schedule_id else None
        follow = _retry_or_recovery(done, now)
        if follow is not None:
            values.append(follow)
        if run.state is RunState.SUCCEEDED and schedule is not None and schedule.chain:
            values.extend(_chain_values(store, conn, schedule, run, now, registry))
    return len(_insert_runs(store, conn, values))


def _may_follow(written: _Written, schedules: Mapping[str, _ScheduleRef]) -> bool:
    """True when a finished run may get a retry, recovery or chain fire."""
    schedule = schedules.get(written.schedule_id) if written.schedule_id else None
    if schedule is not None and not _schedule_live(schedule):
        return False
    if written.values["state"] != RunState.SUCCEEDED.value:
        return True
    return schedule is not None and bool(schedule.chain)


def _schedule_live(schedule: _ScheduleRef) -> bool:
    """Paused or deleted schedules get no retries, recoveries or chain fires."""
    return not schedule.deleted and schedule.state != "paused"


_TOUCH = _schedule_update(last_run_at="b_at", last_run_state="b_state")


def _touch_schedules(
    store: SQLAlchemyStore, conn: sa.Connection, finished: Sequence[_Written | Run]
) -> None:
    """Record each schedule's last run instant and state (one batched UPDATE, id order)."""
    latest: dict[str, tuple[datetime | None, str]] = {}
    for item in finished:
        if isinstance(item, Run):
            if item.schedule_id:
                latest[item.schedule_id] = (item.started_at or item.finished_at, item.state.value)
        elif item.schedule_id:
            values = item.values
            latest[item.schedule_id] = (
                values["started_at"] or values["finished_at"],
                values["state"],
            )
    params = [
        {"b_id": schedule_id, "b_at": latest[schedule_id][0], "b_state": latest[schedule_id][1]}
        for schedule_id in sorted(latest)
    ]
    _TOUCH(store.dialect).execute(conn, params)


def is_interrupted(run: Run) -> bool:
    """True for a run stopped by a shutdown or a lost worker (recovered, no attempt used)."""
    failed = run.state is RunState.FAILED and run.error is not None
    return failed and run.error is not None and run.error.type in _RECOVERABLE_ERRORS


def _retry_or_recovery(done: _Finished, now: datetime) -> dict[str, Any] | None:
    """Return the follow-up run of a failure: a recovery (interrupted) or a retry."""
    run = done.run
    if is_interrupted(run):
        return _recovery_values(done, now)
    if run.state not in (RunState.FAILED, RunState.TIMED_OUT) or run.attempt >= run.max_attempts:
        return None
    delay = planning.retry_delay(done.retry_backoff, run.attempt + 1, run.id)
    return _follow_up_values(
        done, kind=RunKind.RETRY, now=now, available=now + delay, attempt=run.attempt + 1
    )


def _recovery_values(done: _Finished, now: datetime) -> dict[str, Any] | None:
    """Return a recovery run (same attempt) unless ``max_recoveries`` is used up."""
    if done.run.recovery >= done.max_recoveries:
        return None
    return _follow_up_values(
        done, kind=RunKind.RECOVERY, now=now, available=now, attempt=done.run.attempt,
        recovery=done.run.recovery + 1,
    )  # fmt: skip


def _follow_up_values(
    done: _Finished,
    *,
    kind: RunKind,
    now: datetime,
    available: datetime,
    attempt: int,
    recovery: int | None = None,
) -> dict[str, Any]:
    """Return a retry/recovery run copying the parent's snapshot (job, parameters, limits)."""
    run = done.run
    return new_run_values(
        schedule=None,
        tenant=run.tenant,
        job=run.job,
        parameters=run.parameters,
        kind=kind,
        scheduled_for=run.scheduled_for,
        available_at=available,
        now=now,
        max_attempts=run.max_attempts,
        timeout=run.timeout,
        priority=run.priority,
        executor=run.executor,
        max_recoveries=done.max_recoveries,
        retry_backoff=done.retry_backoff,
        attempt=attempt,
        recovery=run.recovery if recovery is None else recovery,
        parent_run_id=run.id,
        schedule_id=run.schedule_id,
        schedule_name=done.schedule_name,
    )


def _chain_values(
    store: SQLAlchemyStore,
    conn: sa.Connection,
    schedule: _ScheduleRef,
    run: Run,
    now: datetime,
    registry: Any,
) -> list[dict[str, Any]]:
    """Return one ``chain`` run per live schedule named in ``schedule.chain`` (same tenant)."""
    s = t.schedules.c
    rows = conn.execute(
        sa.select(t.schedules).where(
            s.tenant == schedule.tenant, s.name.in_(schedule.chain), s.deleted_at.is_(None)
        )
    )
    ctx = _FireContext(store, conn, now, 0.0, {}, registry)
    targets = [row_to_schedule(row) for row in rows]
    ctx.defaults = _job_defaults(conn, (target.job for target in targets))
    return [
        _run_values(
            ctx,
            target,
            kind=RunKind.CHAIN,
            scheduled_for=now,
            available=now,
            parent_run_id=run.id,
        )
        for target in targets
    ]


# --------------------------------------------------------------------------- leases


def renew_leases(
    store: SQLAlchemyStore, leases: Mapping[str, str], *, now: datetime, lease_seconds: float
) -> list[str]:
    """Extend the leases ``{run_id: lease_token}`` still held; return the run ids lost."""
    if not leases:
        return []
    expires = now + timedelta(seconds=lease_seconds)
    lost: list[str] = []
    with store.write() as conn:
        for run_id in sorted(leases):
            result = conn.execute(
                sa.update(t.runs)
                .where(
                    t.runs.c.id == run_id,
                    t.runs.c.lease_token == leases[run_id],
                    t.runs.c.state == RunState.RUNNING.value,
                )
                .values(lease_expires_at=expires)
            )
            if result.rowcount != 1:
                lost.append(run_id)
    return lost


#: Give a claimed run back to ``pending``, fenced by its lease token (``b_id``, ``b_token``).
_RELEASE = (
    sa.update(t.runs)
    .where(
        t.runs.c.id == sa.bindparam("b_id"),
        t.runs.c.lease_token == sa.bindparam("b_token"),
        t.runs.c.state == RunState.RUNNING.value,
    )
    .values(
        state=RunState.PENDING.value,
        worker=None,
        lease_token=None,
        lease_expires_at=None,
        started_at=None,
        lateness_ms=None,
    )
    .execution_options(**{TRUSTED_OPTION: True})
)


def release_runs(store: SQLAlchemyStore, leases: Sequence[tuple[str, str]]) -> None:
    """Return claimed runs that never started to ``pending`` (fenced by lease token)."""
    if not leases:
        return
    with store.write() as conn:
        conn.execute(_RELEASE, [{"b_id": run_id, "b_token": token} for run_id, token in leases])
        store.changed(conn)


def recover_expired(store: SQLAlchemyStore, *, now: datetime, limit: int = 500) -> list[Run]:
    """Fail running runs whose lease expired ("worker lost") and create their recoveries."""
    r = t.runs.c
    query = (
        sa.select(t.runs)
        .where(RUNNING, r.lease_expires_at < now)
        .order_by(r.lease_expires_at)
        .limit(limit)
    )
    with store.write() as conn:
        locked = _locked(store.dialect, query, skip=True)
        rows = [dict(row._mapping) for row in conn.execute(locked)]
        if not rows:
            return []
        lost = [_lose(conn, row, now) for row in rows]
        _touch_schedules(store, conn, [f.run for f in lost])
        values = [v for v in (_recovery_values(f, now) for f in lost) if v is not None]
        _insert_runs(store, conn, values)
        store.changed(conn)
    return [f.run for f in lost]


def _lose(conn: sa.Connection, row: Mapping[str, Any], now: datetime) -> _Finished:
    """Mark one expired run failed with a "worker lost" error."""
    message = (
        f"worker lost: worker {row['worker']!r} stopped renewing the lease of run {row['id']} "
        f"(expired at {row['lease_expires_at'].isoformat()})"
    )
    started = row["started_at"] or now
    values = {
        "state": RunState.FAILED.value,
        "finished_at": now,
        "duration_ms": max(0, _ms(now - started)),
        "error": {"type": WORKER_LOST, "message": message, "traceback": None},
    }
    conn.execute(sa.update(t.runs).where(t.runs.c.id == row["id"]).values(values))
    log.warning(message, extra={"event": "run.worker_lost", "run_id": row["id"]})
    return _finished({**row, **values})


def cancel_requested(store: SQLAlchemyStore, run_ids: Sequence[str]) -> list[str]:
    """Return those of ``run_ids`` that are running with a cancel request.

    Reads the (few) running runs that carry a request rather than matching every id: an
    engine with a deep prefetch queue holds a thousand.
    """
    if not run_ids:
        return []
    with store.read() as conn:
        requested = set(conn.execute(_CANCEL_REQUESTED_QUERY).scalars())
    return [run_id for run_id in run_ids if run_id in requested]


_CANCEL_REQUESTED_QUERY = sa.select(t.runs.c.id).where(RUNNING_CANCEL_REQUESTED)


# --------------------------------------------------------------------------- waiting


@dataclass(frozen=True, slots=True)
class DueTimes:
    """The earliest next fire, pending run and lease expiry (None when there is none)."""

    next_fire_at: datetime | None
    next_available_at: datetime | None
    next_lease_expiry_at: datetime | None


def next_due(store: SQLAlchemyStore) -> DueTimes:
    """Return when the engine next has work: a fire, a pending run or a lease expiry."""
    with store.read() as conn:
        found = [conn.execute(query).scalar() for query in _DUE_TIME_QUERIES]
    return DueTimes(*found)


_DUE_TIME_QUERIES = [
    sa.select(sa.func.min(t.schedules.c.next_run_at)).where(LIVE_ACTIVE),
    sa.select(sa.func.min(t.runs.c.available_at)).where(PENDING),
    sa.select(sa.func.min(t.runs.c.lease_expires_at)).where(RUNNING),
]


def get_runs(store: SQLAlchemyStore, run_ids: Sequence[str]) -> list[Run]:
    """Return the runs with these ids, in the order given (missing ids are left out)."""
    if not run_ids:
        return []
    with store.read() as conn:
        rows = conn.execute(sa.select(t.runs).where(t.runs.c.id.in_(list(run_ids))))
        found = {row.id: row_to_run(row) for row in rows}
    return [found[i] for i in run_ids if i in found]
