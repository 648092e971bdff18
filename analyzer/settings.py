"""Daemon settings: environment (prefix ``CANARYD_``) and an optional TOML or YAML file.

Precedence: init arguments > environment > settings file (``CANARYD_SETTINGS_FILE``) > defaults.
A bad value stops start-up with a message naming the setting.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from analyzer.errors import InvalidInput

__all__ = ["Settings", "load_settings"]


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class _FileSource(PydanticBaseSettingsSource):
    """Settings from the file named by CANARYD_SETTINGS_FILE (TOML or YAML), lowest priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        name = os.environ.get("CANARYD_SETTINGS_FILE", "")
        if not name:
            return {}
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
        except (OSError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            raise InvalidInput("CANARYD_SETTINGS_FILE", f"{path}: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInput("CANARYD_SETTINGS_FILE", f"{path}: expected a table of settings")
        return {str(k).lower(): v for k, v in data.items()}


class Settings(BaseSettings):
    """Everything the daemon reads at start-up."""

    # An empty variable is an empty value (``CANARYD_PROMETHEUS_URL=`` selects the scrape source;
    # an empty list variable is no entries), never None: no setting here is optional.
    model_config = SettingsConfigDict(env_prefix="CANARYD_", extra="forbid", frozen=True)

    listen: str = Field(default="127.0.0.1:8080", description="host:port the API listens on")
    database_url: str = Field(default="sqlite:///./canaryd.db", description="sqlite:///PATH")
    prometheus_url: str = Field(default="", description="Prometheus base URL; empty: scrape source")
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default=[], description="comma-separated bearer tokens"
    )
    webhook_secret: SecretStr = Field(default=SecretStr(""), description="HMAC key for webhooks")
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default=[], description="comma-separated host[:port]"
    )
    config_dir: Path = Field(default=Path("config"), description="judge configs loaded at start")
    public_url: str = Field(default="", description="base URL for evidence links")
    max_concurrency: int = Field(default=256, ge=1, description="concurrent fetches")
    source_timeout_s: float = Field(default=10.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_concurrency: int = Field(
        default=4, ge=1, le=1024, description="webhook attempts in flight per receiver"
    )
    webhook_max_concurrency: int = Field(
        default=64, ge=1, le=4096, description="webhook attempts in flight in all"
    )
    webhook_give_up_s: float = Field(default=86400.0, gt=0)
    webhook_max_backoff_s: float = Field(default=300.0, gt=0)
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    # API access and request limits (analyzer.api.policy.ApiPolicy)
    public_reads: bool = Field(
        default=False, description="GET reads without a token even when tokens are configured"
    )
    allow_inline_configs: bool = Field(
        default=True, description="registrations may carry config_inline (kept by hash only)"
    )
    max_config_metrics: int = Field(default=50, ge=1, le=10_000, description="metrics per config")
    max_kill_rules: int = Field(default=20, ge=0, le=10_000, description="kill rules per config")
    max_metadata_bytes: int = Field(
        default=16_384, ge=0, le=1_048_576, description="a registration's metadata as JSON"
    )

    # Outbound calls (analyzer.net): where the scrape source may go and how much it may read
    scrape_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default=[], description="comma-separated host, host:port or CIDR the scrape source may call"
    )
    scrape_max_bytes: int = Field(
        default=10_485_760, ge=1024, le=2**31, description="largest /metrics body of one target"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSource(settings_cls)

    @field_validator("api_tokens", "webhook_allowed_hosts", "scrape_allowed_hosts", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            msg = f"expected host:port, got {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        if not value.startswith("sqlite:///"):
            msg = f"only sqlite:///PATH is supported in this build, got {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("prometheus_url", "public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("http", "https"):
            msg = f"expected an http(s) URL, got {value!r}"
            raise ValueError(msg)
        return value.rstrip("/")

    @property
    def host(self) -> str:
        """Listen host."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """Listen port."""
        return int(self.listen.rpartition(":")[2])

    @property
    def sqlite_path(self) -> str:
        """File path of the SQLite database."""
        return self.database_url.removeprefix("sqlite:///")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and file; InvalidInput names the bad setting."""
    try:
        return Settings(**overrides)
    except SettingsError as exc:
        raise InvalidInput("settings", str(exc)) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "CANARYD_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
        raise InvalidInput(name, str(err["msg"]).removeprefix("Value error, ")) from None
