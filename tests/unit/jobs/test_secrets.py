"""Secret references: resolution from the environment, errors that name the secret, redaction."""

from __future__ import annotations

import logging

import pytest
from jobs_helpers import make_request

from duetime.jobs import default_registry, import_job_modules
from duetime.jobs.execute import execute_request
from duetime.jobs.secrets import (
    MissingSecretError,
    contains_secret_ref,
    redact,
    redact_text,
    resolve_secrets,
    secret_names,
)
from duetime.models import RunState

SECRET = "s3cr3t-value-42"


def test_resolve_at_any_depth() -> None:
    env = {"DUETIME_SECRET_TOKEN": SECRET, "DUETIME_SECRET_USER": "bob"}
    value = {"a": {"$secret": "TOKEN"}, "b": [1, {"x": {"$secret": "USER"}}], "c": "plain"}
    resolved, used = resolve_secrets(value, env)
    assert resolved == {"a": SECRET, "b": [1, {"x": "bob"}], "c": "plain"}
    assert sorted(used) == sorted([SECRET, "bob"])
    assert secret_names(value) == ["TOKEN", "USER"]
    assert contains_secret_ref(value)
    assert not contains_secret_ref({"$secret": 1})


def test_missing_secret_names_the_secret_and_variable() -> None:
    with pytest.raises(MissingSecretError) as info:
        resolve_secrets({"a": {"$secret": "API_KEY"}}, {})
    assert "'API_KEY'" in str(info.value)
    assert "DUETIME_SECRET_API_KEY" in str(info.value)


def test_redact_masks_values_in_nested_structures() -> None:
    obj = {"token": SECRET, "note": f"Bearer {SECRET}", "list": [SECRET, ("x", SECRET)]}
    assert redact(obj, [SECRET]) == {
        "token": "***",
        "note": "Bearer ***",
        "list": ["***", ("x", "***")],
    }
    assert redact(obj, []) is obj
    assert redact_text(f"url?key={SECRET}", [SECRET]) == "url?key=***"


def test_run_resolves_secret_and_never_logs_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import_job_modules(["fixtures_jobs.demo"])
    monkeypatch.setenv("DUETIME_SECRET_TOKEN", SECRET)
    caplog.set_level(logging.DEBUG)
    request = make_request(
        "fx.echo_secret",
        token={"$secret": "TOKEN"},
        headers={"Authorization": {"$secret": "TOKEN"}},
    )
    result = execute_request(request, default_registry)
    assert result.state is RunState.SUCCEEDED
    assert result.result == {"length": len(SECRET), "headers_set": ["Authorization"]}
    assert caplog.records, "the handler logged"
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.__dict__)
    params = [r for r in caplog.records if getattr(r, "event", None) == "params"]
    assert params[0].fields == {"token": "***", "headers": {"Authorization": "***"}}  # type: ignore[attr-defined]
    assert params[0].run_id == "run-1"
    assert params[0].schedule == "nightly"
    assert params[0].tenant == "acme"  # type: ignore[attr-defined]


def test_run_with_missing_secret_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import_job_modules(["fixtures_jobs.demo"])
    monkeypatch.delenv("DUETIME_SECRET_NOPE", raising=False)
    result = execute_request(
        make_request("fx.echo_secret", token={"$secret": "NOPE"}), default_registry
    )
    assert result.state is RunState.FAILED
    assert result.error is not None
    assert result.error.type == "duetime.jobs.secrets.MissingSecretError"
    assert "'NOPE'" in result.error.message


def test_secret_in_exception_message_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from duetime.jobs import job

    @job("leaky_secret_job")
    def leaky(token: str) -> None:
        raise RuntimeError(f"could not log in with {token}")

    try:
        monkeypatch.setenv("DUETIME_SECRET_TOKEN", SECRET)
        result = execute_request(
            make_request("leaky_secret_job", token={"$secret": "TOKEN"}), default_registry
        )
        assert result.error is not None
        assert result.error.message == "could not log in with ***"
        assert SECRET not in (result.error.traceback or "")
    finally:
        default_registry.unregister("leaky_secret_job")
