"""One SQLite connection on its own thread: how :class:`~analyzer.store.sqlite.SqliteStore`
runs its SQL without blocking the event loop.

Every job runs on a single dedicated thread (a one-worker executor), so the connection is only
ever touched by the thread that opened it and writes from many tasks are serialised in-process;
``BEGIN IMMEDIATE`` (:func:`immediate`) and ``busy_timeout`` serialise them against other
processes on the same file. sqlite3 errors (and rows that do not decode) become
:class:`~analyzer.errors.StoreError` in :func:`_mapped`, the one place that translates them; a
lock held by another process past ``busy_timeout`` is :class:`~analyzer.errors.StoreBusy`, and
:meth:`SqliteThread.ready` is False until a probe finds the lock free again. A file that is not a
SQLite database (or is corrupt) fails :meth:`SqliteThread.open` with one line naming it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from analyzer.errors import StoreBusy, StoreError
from analyzer.store.migrations import apply_migrations

__all__ = ["BUSY_TIMEOUT_MS", "SqliteThread", "immediate"]

_T = TypeVar("_T")

BUSY_TIMEOUT_MS = 5_000
"""How long a writer waits for another process's write lock before failing."""
_PROBE_TIMEOUT_MS = 50
"""How long the readiness probe waits for the lock."""


# the one translation seam ----------------------------------------------------------------------
_BUSY = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
_NOT_A_DATABASE = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


def _mapped(work: Callable[[], _T]) -> _T:
    """Run ``work``, turning sqlite3 and decoding errors into :class:`StoreError`."""
    try:
        return work()
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", "")
        if name in _BUSY or "database is locked" in str(exc):
            raise StoreBusy(f"sqlite: {exc} (another process holds the write lock)") from exc
        raise StoreError(f"sqlite: {exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"stored data does not fit the model: {exc!r}") from exc


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taking the write lock up front; rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteThread:
    """The connection to one SQLite file (``path``, WAL mode, migrated) and its thread."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self.busy = False
        """An operation failed on another process's lock, and :meth:`ready` has not seen the
        lock free since (reads succeed meanwhile: WAL readers are not blocked)."""

    # plumbing ----------------------------------------------------------------------------------
    async def _submit(self, work: Callable[[], _T]) -> _T:
        executor = self._executor
        if executor is None:
            raise StoreError("the store is not open")
        try:
            result = await asyncio.get_running_loop().run_in_executor(executor, _mapped, work)
        except StoreBusy:
            self.busy = True
            raise
        return result

    async def run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work(connection)`` on the store's thread."""
        return await self._submit(lambda: work(self._connection()))

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is not open")
        return self._conn

    def _connect(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and self._path != ":memory:":
                raise StoreError(f"{self._path}: WAL journal mode unavailable (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            apply_migrations(conn, now=time.time())
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.execute("PRAGMA optimize")
            conn.close()

    async def ready(self) -> bool:
        """False while another process holds the write lock. Cheap: after a busy failure
        only, it probes for the lock with a short wait (and a success clears :attr:`busy`)."""
        if not self.busy:
            return True

        def probe(conn: sqlite3.Connection) -> None:
            conn.execute(f"PRAGMA busy_timeout = {_PROBE_TIMEOUT_MS:d}")
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            finally:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")

        try:
            await self.run(probe)
        except StoreBusy:
            return False
        self.busy = False
        return True

    # lifecycle ---------------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the file (creating it), set the pragmas and apply pending migrations."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="canaryd-sqlite")
        try:
            await self._submit(self._connect)
        except StoreError as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            cause = exc.__cause__
            if getattr(cause, "sqlite_errorname", "") in _NOT_A_DATABASE:
                msg = f"{self._path}: not a usable SQLite database ({cause})"
                raise StoreError(msg) from exc
            raise StoreError(f"{self._path}: cannot open the store: {exc}") from exc
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        """Close the connection (checkpointing the WAL) and stop the thread."""
        executor = self._executor
        if executor is None:
            return
        try:
            await self._submit(self._disconnect)
        finally:
            self._executor = None
            executor.shutdown(wait=False)

    # reads, decoded on the store's thread so decoding errors map like the rest -------------
    async def fetch_one(
        self, sql: str, params: Sequence[object], decode: Callable[[sqlite3.Row], _T]
    ) -> _T | None:
        def work(conn: sqlite3.Connection) -> _T | None:
            row = conn.execute(sql, params).fetchone()
            return None if row is None else decode(row)

        return await self.run(work)

    async def fetch_all(
        self, sql: str, params: Sequence[object], decode: Callable[[sqlite3.Row], _T]
    ) -> list[_T]:
        return await self.run(lambda conn: [decode(row) for row in conn.execute(sql, params)])
