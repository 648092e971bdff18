"""Fixtures of the API tests: the app wired as Daemon.build wires it, in the test's loop
(``api``) or served from a thread for blocking clients (``threaded_api``, ``http``,
``canary_ids``); and the whole daemon started from CANARYD_ settings (``start``) with the
recording fake Prometheus it queries."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import requests

from analyzer.configs.catalog import Catalog
from analyzer.store.sqlite import SqliteStore
from analyzer.telemetry import Telemetry
from support.apiserver import Api, ThreadedApi, api_over, auth, dry_run_registration
from support.fakes import T0, MakeConfig, SteppedClock
from support.inprocess import InProcess, in_process
from support.prometheus import FakePrometheus
from support.secured import Daemonised, environment


@pytest.fixture
async def api(
    store: SqliteStore,
    catalog: Catalog,
    clock: SteppedClock,
    telemetry: Telemetry,
    make_config: MakeConfig,
) -> AsyncIterator[Api]:
    """The app as Daemon.build and its cleanup context put it together, on 127.0.0.1:0."""
    await catalog.put(make_config())
    async with api_over(store, catalog, clock, telemetry) as opened:
        yield opened


@pytest.fixture(scope="module")
def threaded_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedApi]:
    """The app served for the whole module from a thread of its own."""
    server = ThreadedApi(tmp_path_factory.mktemp("schemathesis") / "canaryd.db")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http(threaded_api: ThreadedApi) -> Iterator[requests.Session]:
    """One blocking HTTP session for the module."""
    with requests.Session() as session:
        yield session


SEEDS = {
    "live": dry_run_registration(mode="live", webhook={"url": "https://deploy.internal/hooks"}),
    "fire": dry_run_registration(
        mode="live",
        webhook={"url": "https://deploy.internal/hooks"},
        canary={"labels": {"deployment": "on-fire"}},
    ),
    "judged": dry_run_registration(),
    "paused": dry_run_registration(),
}
"""Canaries that exist before the generated cases: in warm-up, rolled back by the kill-switch
(ticks, decision, pending delivery), scored at an interval, and paused."""


@pytest.fixture(scope="module")
def canary_ids(threaded_api: ThreadedApi, http: requests.Session) -> list[str]:
    """Ids of canaries in several states, so generated requests also meet real ones."""
    ids = {}
    for name, body in SEEDS.items():
        response = http.post(
            f"{threaded_api.base_url}/api/v1/canaries", json=body | {"name": name}, headers=auth()
        )
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    paused = http.post(
        f"{threaded_api.base_url}/api/v1/canaries/{ids['paused']}/pause", headers=auth()
    )
    assert paused.status_code == 200, paused.text
    for at in (T0, T0 + 60, T0 + 300):
        threaded_api.wake_at(at)
    fire = http.get(f"{threaded_api.base_url}/api/v1/canaries/{ids['fire']}", headers=auth()).json()
    assert [d["state"] for d in fire["deliveries"]] == ["pending"]
    judged = http.get(
        f"{threaded_api.base_url}/api/v1/canaries/{ids['judged']}", headers=auth()
    ).json()
    assert judged["ticks"][-1]["score"] is not None
    return list(ids.values())


@pytest.fixture
async def prometheus() -> AsyncIterator[FakePrometheus]:
    """A recording fake Prometheus on loopback that answers every range query with no series."""
    async with FakePrometheus() as fake:
        yield fake


@pytest.fixture
def start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prometheus: FakePrometheus
) -> Daemonised:
    """Start ``Daemon.build()``'s app from CANARYD_ variables (allowed hosts as given)."""

    def started(allowed_hosts: str) -> contextlib.AbstractAsyncContextManager[InProcess]:
        env = environment(tmp_path, prometheus_url=prometheus.url, allowed_hosts=allowed_hosts)
        return in_process(env, monkeypatch)

    return started
