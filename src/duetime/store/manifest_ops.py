"""One write transaction shared by many store calls, so a manifest load is all or nothing.

:func:`shared_write` yields a copy of the store whose ``write()`` and ``read()`` both reuse
one open write transaction: every facade operation made through it (create, update, delete
of schedules) lands in that transaction, reads see its uncommitted rows, and nothing is
visible to others until it commits. An error anywhere rolls all of it back.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import sqlalchemy as sa

from duetime.store.sqlalchemy import SQLAlchemyStore


class RollbackRequested(Exception):
    """Raised inside :func:`shared_write` to discard everything written (dry runs)."""


def _reusing(conn: sa.Connection) -> Callable[[], AbstractContextManager[sa.Connection]]:
    def transaction() -> AbstractContextManager[sa.Connection]:
        return nullcontext(conn)

    return transaction


@contextmanager
def shared_write(store: SQLAlchemyStore, *, rollback: bool = False) -> Iterator[SQLAlchemyStore]:
    """Yield a store view whose writes and reads share one transaction; commit on exit.

    With ``rollback`` the transaction is rolled back instead (everything was checked by the
    real code paths, nothing is kept).
    """
    try:
        with store.write() as conn:
            shared = copy.copy(store)
            object.__setattr__(shared, "write", _reusing(conn))
            object.__setattr__(shared, "read", _reusing(conn))
            yield shared
            if rollback:
                raise RollbackRequested
    except RollbackRequested:
        pass
