"""The store failing under the API: another process's lock, a file that is not a database.

Findings L2 and L3 of the isolation review: with SQLite locked by another process,
registrations answered 500 after 5–15 s and ``/readyz`` stayed ready; a corrupt database at
start-up gave a raw traceback (and "Unclosed client session") instead of one line.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.errors import StoreBusy, StoreError
from analyzer.store import sqlite_thread
from analyzer.store.protocol import ConfigVersion
from analyzer.store.sqlite import SqliteStore
from support.apiserver import Api, auth, registration
from support.paths import CONFIG_DIR, ROOT

SHORT_BUSY_MS = 100


@pytest.fixture(autouse=True)
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writers give up on a held lock after 100 ms (5 s in the daemon), so the test is quick."""
    monkeypatch.setattr(sqlite_thread, "BUSY_TIMEOUT_MS", SHORT_BUSY_MS)


@pytest.fixture
def other_writer(db_file: str) -> Iterator[sqlite3.Connection]:
    """Another connection to the test's database, as another process would hold it."""
    conn = sqlite3.connect(db_file, isolation_level=None)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


class TestBusy:
    """Another writer holds the lock: 503 with Retry-After, not ready, nothing changed."""

    async def test_register_is_503_and_readyz_follows_the_lock(
        self, api: Api, other_writer: sqlite3.Connection
    ) -> None:
        """While the lock is held a registration is 503 with Retry-After and creates nothing,
        and /readyz is 503; once it is released both recover."""
        assert (await api.client.get("/readyz")).status == 200
        other_writer.execute("BEGIN IMMEDIATE")
        response = await api.client.post("/api/v1/canaries", json=registration(), headers=auth())
        body = await response.json()
        assert response.status == 503, body
        assert response.headers["Retry-After"] == "5"
        assert "busy" in body["error"]
        ready = await api.client.get("/readyz")
        assert (ready.status, (await ready.json())["status"]) == (503, "store busy")
        listed = await api.client.get("/api/v1/canaries", headers=auth())
        assert listed.status == 200  # reads go on meanwhile (WAL)
        assert api.fleet.canaries == {}
        other_writer.execute("ROLLBACK")
        assert (await api.client.get("/readyz")).status == 200
        created = await api.client.post("/api/v1/canaries", json=registration(), headers=auth())
        assert created.status == 201

    async def test_store_says_busy_until_the_lock_is_free(
        self, db_file: str, other_writer: sqlite3.Connection
    ) -> None:
        """A write past the busy timeout is StoreBusy; ready() is False until a probe finds
        the lock free."""
        store = SqliteStore(db_file)
        await store.open()
        try:
            other_writer.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreBusy, match="another process holds the write lock"):
                await store.put_config_version(_a_version())
            assert not await store.ready()
            other_writer.execute("ROLLBACK")
            assert await store.ready()
        finally:
            await store.close()


def _a_version() -> ConfigVersion:
    return ConfigVersion(name="x", hash="ab" * 32, body={}, created_at=0.0)


class TestCorruptDatabase:
    """A file that is not a SQLite database."""

    async def test_open_names_the_file(self, tmp_path: Path) -> None:
        """StoreError naming the file and what is wrong with it."""
        path = tmp_path / "canaryd.db"
        path.write_bytes(b"this is not a database" * 100)
        with pytest.raises(StoreError) as caught:
            await SqliteStore(str(path)).open()
        assert str(caught.value) == f"{path}: not a usable SQLite database (file is not a database)"

    def test_serve_exits_1_with_one_line(self, tmp_path: Path) -> None:
        """``canaryd serve`` on a corrupt file: exit 1, one log line naming the file, no
        traceback and no unclosed session."""
        path = tmp_path / "canaryd.db"
        path.write_bytes(b"\x00garbage" * 512)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CANARYD_")},
            "CANARYD_DATABASE_URL": f"sqlite:///{path}",
            "CANARYD_LISTEN": "127.0.0.1:0",
            "CANARYD_CONFIG_DIR": str(CONFIG_DIR),
        }
        done = subprocess.run(
            [sys.executable, "-m", "analyzer.cli", "serve"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        output = done.stdout + done.stderr
        assert "Traceback" not in output
        assert "Unclosed" not in output
        [line] = [json.loads(raw) for raw in done.stderr.splitlines() if "start_failed" in raw]
        assert line["error"] == f"{path}: not a usable SQLite database (file is not a database)"
