"""The real processes of the end-to-end tests, on 127.0.0.1: started, waited for, stopped, read.

- :func:`start_daemon`: ``canaryd serve`` told a fresh port (:func:`support.loopback.on_fresh_port`
  — a child must be told its port), returned once ``/readyz`` answers 200 *and* the daemon's
  own token is accepted there, so the process answering is this child; when the child finds its
  port taken it exits saying so, and another port is tried.
- :func:`spawn_daemon`: the same process on a given port without waiting (signals in start-up).
- :func:`start_prometheus`: ``prometheus`` binds port 0 itself and logs the address it listens
  on; the URL is read from that log line, so no port number is guessed.
- :func:`terminate` (SIGTERM, a bounded wait, SIGKILL), :func:`kill9`, :func:`sigterm_exit`.
- :func:`until`: poll an async probe, bounded; :func:`log_events`, :func:`events_after`,
  :func:`keep_log`, :func:`tail` read the processes' logs.

Without the prometheus binary :func:`prometheus_binary` skips, except under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support.loopback import HOST, PortTaken, on_fresh_port

__all__ = [
    "READY_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "DaemonProc",
    "PrometheusProc",
    "events_after",
    "keep_log",
    "kill9",
    "log_events",
    "port_taken",
    "prometheus_binary",
    "sigterm_exit",
    "spawn_daemon",
    "start_daemon",
    "start_prometheus",
    "tail",
    "terminate",
    "until",
]

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 30.0
"""How long a daemon with nothing in flight may take to exit after SIGTERM (a bound, not a
measurement: the grace periods here are a few seconds)."""
_LISTENING = re.compile(r'msg="Listening on" address=(\S+)')


# -- waiting and logs -------------------------------------------------------------------------
async def until(
    probe: Callable[[], Awaitable[bool]], *, timeout_s: float, interval_s: float = 0.2
) -> bool:
    """Poll ``probe`` until it is true or ``timeout_s`` has passed; whether it became true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await probe():
            return True
        await asyncio.sleep(interval_s)
    return False


def tail(path: Path, lines: int = 40) -> str:
    """The end of a log file, for failure messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(text.splitlines()[-lines:])


def log_events(log: Path) -> list[dict[str, Any]]:
    """The daemon's JSON log lines (anything else is skipped)."""
    events = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                events.append(entry)
    return events


def events_after(log: Path, event: str) -> list[dict[str, Any]]:
    """The daemon's log events from the first ``event`` on (which must be there)."""
    events = log_events(log)
    names = [e.get("event") for e in events]
    assert event in names, f"no {event} in the log:\n{tail(log)}"
    return events[names.index(event) :]


def keep_log(log: Path, name: str) -> Path:
    """Copy a daemon log aside before a restart truncates it; the copy's path."""
    kept = log.with_name(name)
    with contextlib.suppress(OSError):
        shutil.copyfile(log, kept)
    return kept


def port_taken(log: Path) -> bool:
    """Whether a process's log says it could not bind its port."""
    return "address already in use" in tail(log, 200).lower()


# -- stopping ---------------------------------------------------------------------------------
async def terminate(proc: asyncio.subprocess.Process, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, a bounded wait, then SIGKILL; always reaps the process."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def kill9(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the process (no chance to clean up) and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL, proc.returncode


async def sigterm_exit(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM a process with nothing in flight; its exit code (bounded wait)."""
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT_S)


# -- the daemon -------------------------------------------------------------------------------
@dataclass
class DaemonProc:
    """A running ``canaryd serve`` process that answered ``/readyz``."""

    proc: asyncio.subprocess.Process
    url: str
    token: str
    log: Path
    grace_s: float

    def log_tail(self) -> str:
        """The end of its log, for failure messages."""
        return tail(self.log)


async def spawn_daemon(
    settings: Mapping[str, str], log: Path, port: int
) -> asyncio.subprocess.Process:
    """Start ``python -m analyzer.cli serve`` on ``127.0.0.1:port`` with ``settings``
    (CANARYD_*, added to a token and info logging) and return at once, not known to be ready.
    The caller stops it (:func:`terminate`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARYD_")}
    env |= {
        "CANARYD_API_TOKENS": os.urandom(16).hex(),
        "CANARYD_LOG_LEVEL": "info",
        "CANARYD_PUBLIC_URL": f"http://{HOST}:{port}",
        **settings,
        "CANARYD_LISTEN": f"{HOST}:{port}",
    }
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "analyzer.cli",
            "serve",
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


async def start_daemon(
    settings: Mapping[str, str], log: Path, *, grace_s: float = 5.0
) -> DaemonProc:
    """``canaryd serve`` on a fresh port with a fresh token, once it is ready (see the module
    docstring); ``settings`` may set the grace period (``CANARYD_SHUTDOWN_GRACE_S``)."""
    token = os.urandom(16).hex()
    grace = float(settings.get("CANARYD_SHUTDOWN_GRACE_S", grace_s))
    env = {**settings, "CANARYD_API_TOKENS": token, "CANARYD_SHUTDOWN_GRACE_S": f"{grace:g}"}

    async def start(port: int) -> DaemonProc:
        proc = await spawn_daemon(env, log, port)
        daemon = DaemonProc(
            proc=proc, url=f"http://{HOST}:{port}", token=token, log=log, grace_s=grace
        )
        try:
            await _until_ours(daemon)
        except BaseException:
            await terminate(proc)
            raise
        return daemon

    return await on_fresh_port(start)


async def _until_ours(daemon: DaemonProc) -> None:
    """Wait until the daemon is ready and it is this child that answers on its port: its token
    is accepted (an action on an unknown canary is 404 to it, 401 to another daemon). Raises
    :class:`PortTaken` when the child could not bind its port."""
    auth = {"Authorization": f"Bearer {daemon.token}"}
    unknown = f"{daemon.url}/api/v1/canaries/{uuid.uuid4().hex}/abort"
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as client:
        while time.monotonic() < deadline:
            if daemon.proc.returncode is not None:
                if port_taken(daemon.log):
                    raise PortTaken
                pytest.fail(f"canaryd exited with {daemon.proc.returncode}:\n{daemon.log_tail()}")
            if await _status(client, "GET", f"{daemon.url}/readyz") == 200:
                if await _status(client, "POST", unknown, headers=auth, json={}) == 404:
                    return
                raise PortTaken  # another process answers on the port
            await asyncio.sleep(0.1)
    pytest.fail(f"canaryd was not ready in {READY_TIMEOUT_S:g}s:\n{daemon.log_tail()}")


async def _status(client: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> int | None:
    try:
        async with client.request(method, url, **kw) as resp:
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return None


# -- prometheus -------------------------------------------------------------------------------
def prometheus_binary() -> str:
    """Path of the prometheus binary; fails under CI=true when it is missing, else skips."""
    path = shutil.which("prometheus")
    if path is None:
        why = "the prometheus binary is not on PATH (apt-get install prometheus; .ci/run does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {why}")
        pytest.skip(why)
    return path


@dataclass(frozen=True)
class PrometheusProc:
    """A running Prometheus: its process, base URL and log file."""

    proc: asyncio.subprocess.Process
    url: str
    log: Path

    def log_tail(self) -> str:
        """The end of its log, for failure messages."""
        return tail(self.log)


async def start_prometheus(binary: str, config: Path, home: Path) -> PrometheusProc:
    """Prometheus with ``config``, its data and log in ``home``, listening on a port it picked
    (``127.0.0.1:0``, read back from its log), once ``/-/ready`` answers 200."""
    log = home / "prometheus.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address={HOST}:0",
            "--log.level=info",  # the "Listening on" line with the bound address is at info
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://{await _listening_on(proc, log)}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as client:

            async def ready() -> bool:
                return await _status(client, "GET", f"{url}/-/ready") == 200

            if not await until(ready, timeout_s=READY_TIMEOUT_S):
                pytest.fail(f"prometheus was not ready in {READY_TIMEOUT_S:g}s:\n{tail(log)}")
    except BaseException:
        await terminate(proc)
        raise
    return PrometheusProc(proc=proc, url=url, log=log)


async def _listening_on(proc: asyncio.subprocess.Process, log: Path) -> str:
    """The ``host:port`` Prometheus logged it listens on."""

    async def logged() -> bool:
        if proc.returncode is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}:\n{tail(log)}")
        return _LISTENING.search(tail(log, 200)) is not None

    if not await until(logged, timeout_s=READY_TIMEOUT_S, interval_s=0.05):
        pytest.fail(f"prometheus did not say where it listens:\n{tail(log)}")
    found = _LISTENING.search(tail(log, 200))
    assert found is not None
    return found.group(1)
