"""The daemon as ``Daemon.build`` wires it from CANARYD_ variables, in the test's process over a
fake clock, served on loopback (the Prometheus it queries: :mod:`support.prometheus`).

- :func:`config_dir`: a config directory holding the analyzer tests' ``test-golden`` config.
- :func:`in_process`: the daemon's app from the environment (set with ``monkeypatch``), a
  :class:`~support.fakes.SteppedClock` and a TestClient of it.
- :meth:`InProcess.step` moves the fake clock no faster than the real webhook round trips: it
  waits until every delivery due by the new time has been attempted and recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from analyzer.daemon import Daemon
from analyzer.settings import Settings, load_settings
from support.configs import config_body
from support.fakes import SteppedClock
from support.loopback import Client, client

__all__ = ["InProcess", "config_dir", "eventually", "in_process"]


def config_dir(root: Path) -> Path:
    """``root/configs`` holding the analyzer tests' ``test-golden`` config."""
    configs = root / "configs"
    configs.mkdir(exist_ok=True)
    (configs / "test-golden.json").write_text(json.dumps(config_body()), encoding="utf-8")
    return configs


@dataclass(slots=True, kw_only=True)
class InProcess:
    """A started in-process daemon: its settings, fake clock and a client."""

    settings: Settings
    clock: SteppedClock
    client: Client

    @property
    def reads(self) -> dict[str, str]:
        """The Authorization header reads need: the daemon's first token (none: reads open)."""
        tokens = self.settings.api_tokens
        if not tokens:
            return {}
        secret = tokens[0].get_secret_value().rpartition("@")[2]
        return {"Authorization": f"Bearer {secret}"}

    async def canary(self, canary_id: str) -> dict[str, Any]:
        """GET /api/v1/canaries/{id}: state, ticks, decisions and deliveries."""
        response = await self.client.get(f"/api/v1/canaries/{canary_id}", headers=self.reads)
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body

    async def canaries(self) -> list[dict[str, Any]]:
        """GET /api/v1/canaries, each with its deliveries."""
        listed = await (await self.client.get("/api/v1/canaries", headers=self.reads)).json()
        return [await self.canary(c["id"]) for c in listed]

    async def _due_by(self, at: float) -> dict[str, int]:
        """Attempt counts of the deliveries the dispatcher sends at its first poll at ``at``:
        each canary's oldest pending one, when it is due by then."""
        due = {}
        for canary in await self.canaries():
            pending = [d for d in canary["deliveries"] if d["state"] == "pending"]
            if pending and pending[0]["next_attempt_at"] <= at:
                due[pending[0]["delivery_id"]] = pending[0]["attempts"]
        return due

    async def _attempted(self, due: Mapping[str, int]) -> bool:
        rows = {d["delivery_id"]: d for c in await self.canaries() for d in c["deliveries"]}
        return all(rows[i]["state"] != "pending" or rows[i]["attempts"] > n for i, n in due.items())

    async def step(self, seconds: float = 1.0) -> None:
        """Move the fake clock ``seconds`` (at least one dispatcher poll, every 0.5 s), then wait
        until each delivery due by then has been attempted and its outcome recorded."""
        due = await self._due_by(self.clock.now() + seconds)
        await self.clock.advance(seconds)
        await eventually(lambda: self._attempted(due), what=f"attempts of {sorted(due)}")

    async def until(self, check: Callable[[], Awaitable[bool]], *, limit: int = 400) -> None:
        """:meth:`step` until ``check()`` holds; bounded."""
        for _ in range(limit):
            if await check():
                return
            await self.step()
        msg = f"not reached after {limit} fake seconds"
        raise AssertionError(msg)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, what: str, limit: int = 1000, interval_s: float = 0.01
) -> None:
    """Wait until ``check()`` holds, polled ``interval_s`` apart; fails saying ``what`` was
    not reached after ``limit`` polls. The daemon's tasks run meanwhile."""
    for _ in range(limit):
        if await check():
            return
        await asyncio.sleep(interval_s)
    msg = f"{what}: not reached after {limit} polls"
    raise AssertionError(msg)


@contextlib.asynccontextmanager
async def in_process(
    env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[InProcess]:
    """``Daemon(load_settings(), clock=SteppedClock()).build()`` from ``env`` (set as CANARYD_
    variables), served on 127.0.0.1 with a client, until the block ends."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    clock = SteppedClock()
    async with client(Daemon(settings, clock=clock).build()) as http:
        yield InProcess(settings=settings, clock=clock, client=http)
