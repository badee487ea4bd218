"""ApiKeyService on both backends: hashed storage, authentication, cache, revocation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from duetime.clock import FakeClock
from duetime.errors import NotFoundError, ValidationError
from duetime.keys import ApiKeyService, Role, hash_key
from duetime.store.sqlalchemy import SQLAlchemyStore
from duetime.store.tables_auth import api_keys


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[SQLAlchemyStore]:
    s = SQLAlchemyStore(db_url, clock=clock)
    yield s
    s.dispose()


def test_create_stores_only_the_sha256(store: SQLAlchemyStore) -> None:
    created = ApiKeyService(store).create("acme", "operator", name="ci")
    assert created.secret.startswith("dtk_")
    assert len(created.secret) >= 40
    with store.read() as conn:
        rows = list(conn.execute(sa.select(api_keys)))
    assert len(rows) == 1
    stored = rows[0]._mapping
    assert created.secret not in {str(v) for v in stored.values()}
    assert stored["key_hash"] == hashlib.sha256(created.secret.encode()).hexdigest()
    assert stored["tenant"] == "acme"
    assert stored["role"] == "operator"


def test_keys_are_random(store: SQLAlchemyStore) -> None:
    service = ApiKeyService(store)
    secrets = {service.create("t", "viewer").secret for _ in range(5)}
    assert len(secrets) == 5


def test_authenticate_roundtrip_and_unknown(store: SQLAlchemyStore) -> None:
    service = ApiKeyService(store)
    created = service.create("acme", Role.ADMIN)
    key = service.authenticate(created.secret)
    assert key is not None
    assert (key.id, key.tenant, key.role) == (created.key.id, "acme", Role.ADMIN)
    assert service.authenticate(created.secret + "x") is None
    assert service.authenticate("not-a-key") is None
    assert service.authenticate("") is None


def test_revoke_takes_effect_immediately_despite_cache(store: SQLAlchemyStore) -> None:
    service = ApiKeyService(store, cache_seconds=3600)
    created = service.create("acme", "admin")
    assert service.authenticate(created.secret) is not None
    service.revoke(created.key.id)
    assert service.authenticate(created.secret) is None
    with pytest.raises(NotFoundError):
        service.revoke(created.key.id)


def test_revoke_from_another_process_expires_with_the_cache(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    service = ApiKeyService(store, cache_seconds=5)
    other = ApiKeyService(store)
    created = service.create("acme", "viewer")
    assert service.authenticate(created.secret) is not None
    other.revoke(created.key.prefix)
    clock.advance(6)
    assert service.authenticate(created.secret) is None


def test_list_scoped_by_tenant(store: SQLAlchemyStore) -> None:
    service = ApiKeyService(store)
    a = service.create("a", "viewer")
    service.create("b", "admin")
    assert [k.id for k in service.list("a")] == [a.key.id]
    assert len(service.list()) == 2
    service.revoke(a.key.id)
    assert service.list("a") == []
    assert [k.id for k in service.list("a", include_revoked=True)] == [a.key.id]


def test_revoke_of_other_tenant_is_not_found(store: SQLAlchemyStore) -> None:
    service = ApiKeyService(store)
    created = service.create("a", "viewer")
    with pytest.raises(NotFoundError):
        service.revoke(created.key.id, tenant="b")
    assert service.authenticate(created.secret) is not None


def test_bad_role_and_tenant_name_the_field(store: SQLAlchemyStore) -> None:
    service = ApiKeyService(store)
    with pytest.raises(ValidationError) as err:
        service.create("a", "root")
    assert err.value.field == "role"
    with pytest.raises(ValidationError) as err:
        service.create(" a", "viewer")
    assert err.value.field == "tenant"


def test_last_used_is_recorded(store: SQLAlchemyStore, clock: FakeClock) -> None:
    service = ApiKeyService(store, cache_seconds=0)
    created = service.create("a", "viewer")
    service.authenticate(created.secret)
    [key] = service.list("a")
    assert key.last_used_at == clock.now()


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("abc") == hashlib.sha256(b"abc").hexdigest()
