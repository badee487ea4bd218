"""FastAPI dependencies: the facade, the caller, role gates and preconditions."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from duetime.api.auth import Principal, bearer_token, unauthorized
from duetime.api.problems import ApiProblem
from duetime.api.read_cache import Authenticator
from duetime.errors import VersionMismatchError
from duetime.keys import Role
from duetime.scheduler import Scheduler

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,10})"?\s*$')


async def get_scheduler(request: Request) -> Scheduler:
    """The facade this app serves."""
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


async def authenticate(request: Request) -> Principal:
    """Authenticate the bearer key (cached per data version on SQLite; else the database)."""
    token = bearer_token(request.headers.get("authorization"))
    auth: Authenticator = request.app.state.auth
    key = await auth.key(token)
    if key is None:
        raise unauthorized()
    return Principal.of(key)


def _role(needed: Role) -> Any:
    """One dependency per role: authenticate, then check the role (no nested dependencies,
    which FastAPI resolves per request at a measurable cost)."""

    async def gate(request: Request) -> Principal:
        principal = await authenticate(request)
        principal.require(needed)
        return principal

    gate.__name__ = f"require_{needed.value}"
    return gate


Viewer = Annotated[Principal, Depends(_role(Role.VIEWER))]
Operator = Annotated[Principal, Depends(_role(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(_role(Role.ADMIN))]
SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='The schedule version last seen (`"3"`); a stale one answers 412.',
    ),
]


def parse_if_match(value: str | None) -> int | None:
    """Return the version in an ``If-Match`` header (None for absent or ``*``)."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.match(value)
    if match is None:
        raise ApiProblem(
            400,
            f"If-Match must be a schedule version such as '\"3\"', got {value!r}",
            errors=[{"field": "If-Match", "message": "not a version"}],
        )
    return int(match.group(1))


def expected_version(
    if_match: str | None,
    body_version: int | None,
    body_updated_at: datetime | None,
    current: tuple[int, datetime | None] | None,
) -> int | None:
    """Combine If-Match and body preconditions into one expected version.

    ``current`` is the schedule's (version, updated_at), needed only for
    ``expected_updated_at``. Disagreeing preconditions are a 400.
    """
    header = parse_if_match(if_match)
    if header is not None and body_version is not None and header != body_version:
        raise ApiProblem(
            400,
            f"If-Match {header} and expected_version {body_version} disagree",
            errors=[{"field": "expected_version", "message": "disagrees with If-Match"}],
        )
    wanted = header if header is not None else body_version
    if body_updated_at is not None and body_updated_at.tzinfo is None:
        raise ApiProblem(
            422,
            "expected_updated_at needs a UTC offset (copy updated_at from the schedule)",
            errors=[{"field": "expected_updated_at", "message": "needs a UTC offset"}],
        )
    if body_updated_at is not None and current is not None:
        version, updated_at = current
        if updated_at is None or updated_at != body_updated_at:
            raise VersionMismatchError(
                f"the schedule was updated at {updated_at.isoformat() if updated_at else None}, "
                f"not {body_updated_at.isoformat()}",
                current_version=version,
            )
        if wanted is None:
            wanted = version
    return wanted
