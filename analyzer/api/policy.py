"""What the API lets a caller do and how big a request may be, from the settings.

:class:`ApiPolicy` is built once from :class:`~analyzer.settings.Settings` (:meth:`ApiPolicy.of`);
its defaults are the settings' defaults, so an app built without settings (tests, tools) is as
strict as a daemon left at its defaults. The checks here run before anything is parsed further or
stored, and each failure names its field (422); the fixed bounds (stage count, label and variable
value lengths, name lengths) live in the schemas themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analyzer.errors import InvalidInput

if TYPE_CHECKING:
    from analyzer.settings import Settings

__all__ = ["ApiPolicy", "check_config_size", "check_metadata_size"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiPolicy:
    """Read access, inline configs and the size limits of registrations and configs."""

    public_reads: bool = False
    """GET reads of canaries, configs and verdicts without a token (only when tokens exist)."""
    allow_inline_configs: bool = True
    """Whether a registration may carry ``config_inline`` (stored by content hash only)."""
    max_config_metrics: int = 50
    max_kill_rules: int = 20
    max_metadata_bytes: int = 16_384
    """A registration's ``metadata`` as compact JSON, in UTF-8 bytes."""
    scrape_allowed_hosts: tuple[str, ...] = ()
    """What a scrape target may be (the scrape source only; nothing when empty)."""

    @classmethod
    def of(cls, settings: Settings) -> ApiPolicy:
        """The policy the settings ask for."""
        return cls(
            public_reads=settings.public_reads,
            allow_inline_configs=settings.allow_inline_configs,
            max_config_metrics=settings.max_config_metrics,
            max_kill_rules=settings.max_kill_rules,
            max_metadata_bytes=settings.max_metadata_bytes,
            scrape_allowed_hosts=tuple(settings.scrape_allowed_hosts),
        )


def check_config_size(body: Any, policy: ApiPolicy, prefix: str = "") -> None:
    """Refuse a config body with too many metrics or kill-switch rules, before it is validated
    (validating 10,000 metrics is itself the cost being refused)."""
    if not isinstance(body, dict):
        return  # not an object: the config's own validation says so
    bounds = (("metrics", policy.max_config_metrics), ("kill_switch", policy.max_kill_rules))
    for key, most in bounds:
        items = body.get(key)
        if isinstance(items, list) and len(items) > most:
            msg = f"{key}: {len(items)} entries, at most {most} per config"
            raise InvalidInput(f"{prefix}{key}", msg)


def check_metadata_size(metadata: dict[str, Any], policy: ApiPolicy) -> None:
    """Refuse metadata larger than ``max_metadata_bytes`` as compact JSON."""
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > policy.max_metadata_bytes:
        msg = f"{size} bytes as JSON, at most {policy.max_metadata_bytes}"
        raise InvalidInput("metadata", msg)
