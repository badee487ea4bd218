"""Review findings on database URL handling: bad URLs are ConfigurationErrors without secrets."""

from __future__ import annotations

import pytest

from duetime.errors import ConfigurationError
from duetime.store.sqlalchemy import normalize_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:s3cret-pw@db.example:abc/app",  # bad port: was a bare ValueError
        "postgres ql://user:s3cret-pw@db.example/app",  # unparseable: echoed the password
    ],
)
def test_bad_urls_are_configuration_errors_that_hide_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        normalize_url(url)
    assert "s3cret-pw" not in str(info.value)
    assert "database_url" in str(info.value)
