"""Bearer parsing, role ranks, tenant rules and precondition merging."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from duetime.api.auth import Principal, bearer_token
from duetime.api.deps import expected_version, parse_if_match
from duetime.api.problems import ApiProblem
from duetime.errors import VersionMismatchError
from duetime.keys import Role

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   "])
def test_bearer_token_refuses_missing_or_other_schemes(header: str | None) -> None:
    with pytest.raises(ApiProblem) as err:
        bearer_token(header)
    assert err.value.status == 401
    assert err.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_bearer_token_case_insensitive_scheme() -> None:
    assert bearer_token("bearer dtk_abc") == "dtk_abc"
    assert bearer_token("Bearer  dtk_abc ") == "dtk_abc"


def test_roles_include_lower_ones() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR)
    assert Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR)
    viewer = Principal("k", "acme", Role.VIEWER)
    with pytest.raises(ApiProblem) as err:
        viewer.require(Role.ADMIN)
    assert err.value.status == 403


def test_tenant_for_create() -> None:
    bound = Principal("k", "acme", Role.ADMIN)
    assert bound.tenant_for_create(None) == "acme"
    assert bound.tenant_for_create("acme") == "acme"
    with pytest.raises(ApiProblem):
        bound.tenant_for_create("globex")
    star = Principal("k", "*", Role.ADMIN)
    assert star.tenant_for_create("globex") == "globex"
    assert star.tenant_for_create(None) == "default"


@pytest.mark.parametrize(
    ("header", "version"),
    [(None, None), ("*", None), ('"3"', 3), ('W/"4"', 4), ("5", 5), (' "6" ', 6)],
)
def test_parse_if_match(header: str | None, version: int | None) -> None:
    assert parse_if_match(header) == version


@pytest.mark.parametrize("header", ['"a"', "null", '"1", "2"', "-1"])
def test_parse_if_match_refuses_garbage(header: str) -> None:
    with pytest.raises(ApiProblem) as err:
        parse_if_match(header)
    assert err.value.status == 400


def test_expected_version_merges_sources() -> None:
    assert expected_version('"2"', None, None, (2, T0)) == 2
    assert expected_version(None, 2, None, (2, T0)) == 2
    assert expected_version(None, None, T0, (7, T0)) == 7
    assert expected_version('"2"', 2, None, (2, T0)) == 2
    with pytest.raises(ApiProblem):
        expected_version('"2"', 3, None, (2, T0))
    with pytest.raises(VersionMismatchError) as err:
        expected_version(None, None, datetime(2029, 1, 1, tzinfo=UTC), (7, T0))
    assert err.value.current_version == 7


def test_expected_updated_at_needs_an_offset() -> None:
    with pytest.raises(ApiProblem) as err:
        expected_version(None, None, datetime(2030, 1, 1), (1, T0))
    assert err.value.status == 422
