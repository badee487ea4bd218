"""``duetime api`` (the REST API alone) and ``duetime api-key create|list|revoke``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table

from duetime.cli.common import (
    DatabaseOpt,
    JsonOpt,
    console,
    emit_json,
    handle_errors,
    open_scheduler,
    settings_for,
)
from duetime.keys import ADMIN_KEY_PATH, ApiKey, ApiKeyService, ensure_admin_key

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

HostOpt = Annotated[str | None, typer.Option("--host", help="Interface (default 127.0.0.1).")]
PortOpt = Annotated[int | None, typer.Option("--port", help="Port (default 8000).")]


@contextmanager
def key_service(database: str | None) -> Iterator[ApiKeyService]:
    """An ApiKeyService over the configured database (schema checked first)."""
    from duetime.clock import SystemClock
    from duetime.store.sqlalchemy import SQLAlchemyStore

    store = SQLAlchemyStore(settings_for(database_url=database).database_url, clock=SystemClock())
    try:
        store.check_schema()
        yield ApiKeyService(store, cache_seconds=0)
    finally:
        store.dispose()


@handle_errors
def api_command(host: HostOpt = None, port: PortOpt = None, database: DatabaseOpt = None) -> None:
    """Serve the REST API alone (engines run in other processes)."""
    from duetime.api.server import serve

    settings = settings_for(database_url=database, api_host=host, api_port=port)
    scheduler = open_scheduler(database)
    scheduler.store.check_schema()
    console.print(f"duetime API on http://{settings.api_host}:{settings.api_port}/api/v1/docs")
    serve(scheduler, host=settings.api_host, port=settings.api_port, with_engine=False)


@keys_app.command("create")
@handle_errors
def create_key(
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant the key is bound to ('*' = all).")
    ],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")],
    name: Annotated[str | None, typer.Option("--name", help="A label for listings.")] = None,
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it once (only its SHA-256 is stored)."""
    with key_service(database) as service:
        created = service.create(tenant, role, name=name)
    if as_json:
        emit_json(
            {
                "id": created.key.id,
                "key": created.secret,
                "tenant": created.key.tenant,
                "role": created.key.role.value,
            }
        )
        return
    console.print(created.secret, markup=False)
    console.print(
        f"[dim]id {created.key.id}, tenant {created.key.tenant}, role "
        f"{created.key.role.value} — store it now: it is not shown again[/dim]"
    )


@keys_app.command("list")
@handle_errors
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys.")] = False,
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List keys (never the keys themselves: id, shown prefix, tenant, role)."""
    with key_service(database) as service:
        keys = service.list(tenant, include_revoked=revoked)
    if as_json:
        emit_json([k.to_dict() for k in keys])
        return
    console.print(_key_table(keys))


def _key_table(keys: list[ApiKey]) -> Table:
    table = Table("id", "prefix", "tenant", "role", "name", "created", "last used", "revoked")
    for k in keys:
        table.add_row(
            k.id,
            k.prefix + "…",
            k.tenant,
            k.role.value,
            k.name or "",
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "",
            k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "",
        )
    return table


@keys_app.command("revoke")
@handle_errors
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (or its shown prefix).")],
    database: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: it stops authenticating at once (other API processes within 5 s)."""
    with key_service(database) as service:
        key = service.revoke(key_id)
    if as_json:
        emit_json({"id": key.id, "revoked": True})
        return
    console.print(f"revoked {key.id} ({key.tenant}, {key.role.value})")


def first_admin_key(database_url: str) -> list[str]:
    """``duetime init`` hook: create the first admin key once and write it to a 0600 file."""
    with key_service(database_url) as service:
        created = ensure_admin_key(service, ADMIN_KEY_PATH)
    where = ADMIN_KEY_PATH.resolve()
    if created is None:
        return [f"admin key: {where} (already there and valid; not shown again)"]
    return [
        f"first admin key (tenant '*', shown once): {created.secret}",
        f"admin key written to {where} (mode 0600)",
    ]


def register(app: typer.Typer) -> None:
    """Add ``api`` and the ``api-key`` group, and the first-admin-key ``init`` hook."""
    from duetime.cli.db import register_init_hook

    app.command("api")(api_command)
    app.add_typer(keys_app, name="api-key")
    register_init_hook(first_admin_key)
