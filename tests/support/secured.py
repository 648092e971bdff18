"""The daemon as the security tests start it: ``Daemon.build`` from CANARYD_ settings with four
bearer tokens of different scopes (in-process, :mod:`support.inprocess`), and what the tests ask
of it."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.fakes import auth, registration
from support.inprocess import InProcess, config_dir
from support.loopback import WEBHOOK_SECRET

__all__ = [
    "ACT",
    "API_TOKENS",
    "CONFIG",
    "EVERY_TOKEN",
    "REGISTER",
    "ROOT",
    "SCOPED",
    "STEP",
    "Daemonised",
    "environment",
    "phases",
    "register",
]

ROOT = "root-tok-5be0c1d7a9"
ACT = "act-tok-0f3e8a2d"
CONFIG = "cfg-tok-77a1c9e4"
REGISTER = "reg-tok-3d5b6f10"
API_TOKENS = f"{ROOT},act@{ACT},config@{CONFIG},register@{REGISTER}"
SCOPED = {"act": ACT, "config": CONFIG, "register": REGISTER}
EVERY_TOKEN = (ROOT, ACT, CONFIG, REGISTER)
STEP = 60.0

Daemonised = Callable[[str], contextlib.AbstractAsyncContextManager[InProcess]]
"""The ``start`` fixture: ``start(allowed_hosts)`` as an ``async with`` block."""


def environment(root: Path, *, prometheus_url: str, allowed_hosts: str) -> dict[str, str]:
    """The CANARYD_ variables of a daemon under ``root`` (its database and the test-golden
    config), querying ``prometheus_url``, with webhooks allowed to ``allowed_hosts``."""
    return {
        "CANARYD_API_TOKENS": API_TOKENS,
        "CANARYD_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CANARYD_WEBHOOK_ALLOWED_HOSTS": allowed_hosts,
        "CANARYD_PROMETHEUS_URL": prometheus_url,
        "CANARYD_DATABASE_URL": f"sqlite:///{root / 'canaryd.db'}",
        "CANARYD_CONFIG_DIR": str(config_dir(root)),
        "CANARYD_PUBLIC_URL": "http://canaryd.test",
        "CANARYD_SOURCE_TIMEOUT_S": "2",
        "CANARYD_WEBHOOK_TIMEOUT_S": "2",
        "CANARYD_SHUTDOWN_GRACE_S": "2",
        "CANARYD_MAX_BODY_BYTES": "65536",
    }


async def register(daemon: InProcess, token: str = ROOT, **changes: Any) -> dict[str, Any]:
    """Register a canary; asserts 201."""
    response = await daemon.client.post(
        "/api/v1/canaries", json=registration(**changes), headers=auth(token)
    )
    body: dict[str, Any] = await response.json()
    assert response.status == 201, body
    return body


async def phases(daemon: InProcess) -> Counter[str]:
    """How many canaries are in each phase."""
    listed = await (await daemon.client.get("/api/v1/canaries", headers=auth(ROOT))).json()
    return Counter(c["phase"] for c in listed)
