"""Secret references: ``{"$secret": "NAME"}`` parameter values resolved at execution.

A reference is stored and shown as-is; only the executing process reads the value, from its
environment variable ``DUETIME_SECRET_NAME``. Resolved values are remembered for the run so
that logs, error messages and results can be redacted (:func:`redact`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from duetime.errors import JobError

#: The key of a secret reference object.
SECRET_KEY = "$secret"
#: Environment prefix of secret values.
SECRET_ENV_PREFIX = "DUETIME_SECRET_"
#: What a redacted secret value becomes.
REDACTED = "***"
#: Allowed secret names (they become part of an environment variable name).
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Secret values shorter than this are not redacted inside longer strings (too many false hits).
MIN_REDACT_LENGTH = 3


class MissingSecretError(JobError, LookupError):
    """A referenced secret has no value in the executing process's environment."""


def is_secret_ref(value: Any) -> bool:
    """True when ``value`` is exactly ``{"$secret": "NAME"}``."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(SECRET_KEY), str)


def contains_secret_ref(value: Any) -> bool:
    """True when ``value`` is or contains (at any depth) a secret reference."""
    if is_secret_ref(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret_ref(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_secret_ref(v) for v in value)
    return False


def secret_names(value: Any) -> list[str]:
    """Return the names of every secret referenced in ``value`` (depth-first order)."""
    if is_secret_ref(value):
        return [value[SECRET_KEY]]
    if isinstance(value, dict):
        return [name for v in value.values() for name in secret_names(v)]
    if isinstance(value, list | tuple):
        return [name for v in value for name in secret_names(v)]
    return []


def env_var_for(name: str) -> str:
    """Return the environment variable that holds secret ``name``."""
    return f"{SECRET_ENV_PREFIX}{name}"


def check_secret_name(name: str) -> str | None:
    """Return why ``name`` is not a usable secret name, or None when it is."""
    if SECRET_NAME_RE.match(name):
        return None
    return (
        f"secret name {name!r} must be letters, digits and underscores (not starting with a digit)"
    )


def resolve_secrets(value: Any, environ: Mapping[str, str] | None = None) -> tuple[Any, list[str]]:
    """Return ``value`` with every reference replaced by its value, and the values used.

    Raises :class:`MissingSecretError` naming the secret (never a value) when one is unset.
    """
    if not value:  # no parameters (most runs): nothing to walk
        return value, []
    env = os.environ if environ is None else environ
    used: list[str] = []

    def walk(item: Any) -> Any:
        if is_secret_ref(item):
            name = item[SECRET_KEY]
            secret = env.get(env_var_for(name))
            if secret is None:
                raise MissingSecretError(
                    f"secret {name!r} is not set: define {env_var_for(name)} in the "
                    "environment of the process that executes the job"
                )
            used.append(secret)
            return secret
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(value), used


def redact(obj: Any, secret_values: Iterable[str] = ()) -> Any:
    """Return a copy of ``obj`` where every occurrence of a secret value is masked.

    Strings equal to a secret become ``***``; longer strings containing one have it replaced.
    Dict keys, lists and tuples are walked; secret references stay (they are not secret).
    """
    values = sorted({v for v in secret_values if v}, key=len, reverse=True)
    if not values:
        return obj
    return _redact(obj, values)


def redact_text(text: str, secret_values: Iterable[str]) -> str:
    """Return ``text`` with every occurrence of a secret value masked."""
    values = sorted({v for v in secret_values if v}, key=len, reverse=True)
    return _redact_str(text, values)


def _redact(obj: Any, values: list[str]) -> Any:
    if isinstance(obj, str):
        return _redact_str(obj, values)
    if isinstance(obj, dict):
        return {_redact(k, values): _redact(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact(v, values) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_redact(v, values) for v in obj)
    return obj


def _redact_str(text: str, values: list[str]) -> str:
    for value in values:
        if text == value:
            return REDACTED
        if len(value) >= MIN_REDACT_LENGTH:
            text = text.replace(value, REDACTED)
    return text
