"""Settings: ``DUETIME_*`` environment, then ``duetime.toml``, then defaults; flags override."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "sqlite:///duetime.db"

StrList = Annotated[list[str], NoDecode]


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Instance settings (DESIGN §4 Config)."""

    model_config = SettingsConfigDict(
        env_prefix="DUETIME_",
        toml_file="duetime.toml",
        extra="ignore",
    )

    database_url: str = DEFAULT_DATABASE_URL
    timezone: str = "UTC"
    concurrency: int = Field(5, ge=1, le=1000)
    executor: str = "process"
    jobs: StrList = Field(default_factory=list)
    tenant: str = "default"
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    celery_broker_url: str | None = None
    http_allow_hosts: StrList = Field(default_factory=list)
    shell_allow: StrList = Field(default_factory=list)
    history_retention_days: int = Field(30, ge=1)
    history_keep_last: int = Field(100, ge=0)
    log_format: str = "console"
    lookahead_seconds: float = Field(1.0, ge=0, le=60)
    lease_seconds: float = Field(30.0, gt=0)
    heartbeat_seconds: float = Field(10.0, gt=0)
    shutdown_grace_seconds: float = Field(30.0, ge=0)

    @field_validator("jobs", "http_allow_hosts", "shell_allow", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any) -> Any:
        return _split_list(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init) > environment > duetime.toml > defaults."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Return settings; ``overrides`` (flags) win; None values are ignored."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    if config_file is not None:

        class _FileSettings(Settings):
            model_config = SettingsConfigDict(toml_file=str(config_file))

        return _FileSettings(**clean)
    return Settings(**clean)
