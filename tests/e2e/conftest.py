"""Fixtures for the end-to-end tests: real processes and servers, all on 127.0.0.1.

- ``deployments``: four simulated deployments (:mod:`support.deployments`), each on its own port.
- ``prometheus``: the real ``prometheus`` binary scraping them every second, each target
  labelled ``deployment=<name>``; it binds port 0 itself (:func:`support.procs.start_prometheus`).
- ``receiver``: the deploy system's webhook endpoint, :class:`support.loopback.WebhookReceiver`
  with a fresh secret, answering 401 to a body whose HMAC does not match; started.
- ``start_daemon``: the real ``canaryd serve`` process with CANARYD_* settings, on a fresh port,
  returned once ready (:func:`support.procs.start_daemon`).
- ``until``: poll an async probe within a bounded time.

Every process is terminated in teardown, also when the test fails; every wait is bounded.
Without the prometheus binary the tests that need it skip, except under ``CI=true``, where they
fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.deployments import Deployments, serving_deployments
from support.loopback import WebhookReceiver
from support.procs import (
    DaemonProc,
    PrometheusProc,
    prometheus_binary,
    start_prometheus,
    terminate,
)
from support.procs import (
    start_daemon as start_daemon_process,
)
from support.procs import (
    until as poll_until,
)

SCRAPE_INTERVAL = "1s"

Until = Callable[..., Awaitable[bool]]
StartDaemon = Callable[[Mapping[str, str]], Awaitable[DaemonProc]]


@pytest.fixture
def until() -> Until:
    """``await until(probe, timeout_s=...)``: poll an async probe within a bounded time."""
    return poll_until


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path of the prometheus binary; fails under CI=true when it is missing, else skips."""
    return prometheus_binary()


@pytest.fixture
async def deployments() -> AsyncIterator[Deployments]:
    """Four deployments serving /metrics, each on its own 127.0.0.1 port."""
    async with serving_deployments() as running:
        yield running


def prometheus_config(targets: Mapping[str, str]) -> dict[str, Any]:
    """prometheus.yml: one job, one static target per deployment labelled with its name."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "canaryd-e2e",
                "static_configs": [
                    {"targets": [target], "labels": {"deployment": name}}
                    for name, target in targets.items()
                ],
            }
        ],
    }


@pytest.fixture
async def prometheus(
    prometheus_bin: str, deployments: Deployments, tmp_path: Path
) -> AsyncIterator[PrometheusProc]:
    """Real Prometheus on 127.0.0.1 scraping the deployments; stopped in teardown."""
    home = tmp_path / "prometheus"
    home.mkdir()
    config = home / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(deployments.targets)), encoding="utf-8")
    running = await start_prometheus(prometheus_bin, config, home)
    try:
        yield running
    finally:
        await terminate(running.proc)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A started webhook receiver with a fresh secret that rejects bad signatures."""
    async with WebhookReceiver(os.urandom(16).hex(), require_signature=True) as hook:
        yield hook


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[StartDaemon]:
    """Start ``python -m analyzer.cli serve`` with CANARYD_* settings; stopped in teardown.

    The caller's settings are added to a tmp SQLite database and a shutdown grace period of
    5 s; the daemon gets a fresh port and token, and the function returns once it is ready.
    """
    started: list[DaemonProc] = []

    async def start(settings: Mapping[str, str]) -> DaemonProc:
        env = {
            "CANARYD_DATABASE_URL": f"sqlite:///{tmp_path / 'canaryd.db'}",
            "CANARYD_SHUTDOWN_GRACE_S": "5",
            **settings,
        }
        daemon = await start_daemon_process(env, tmp_path / "canaryd.log")
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            await terminate(daemon.proc)
