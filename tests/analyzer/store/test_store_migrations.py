"""Schema migrations: applied once each, recorded, refused when the database is newer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from analyzer.errors import StoreError
from analyzer.store.migrations import MIGRATIONS, apply_migrations, schema_version
from analyzer.store.sqlite import SqliteStore

LATEST = len(MIGRATIONS)


def _ledger(path: Path) -> list[tuple[int, float]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT version, applied_at FROM schema_migrations ORDER BY 1")
        ledger = [(int(v), float(t)) for v, t in rows]
    conn.close()
    return ledger


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name for (name,) in rows}


def _autocommit() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", isolation_level=None)


class TestApplyMigrations:
    """apply_migrations on a bare connection."""

    def test_fresh_database_gets_every_table(self) -> None:
        """A new database is brought to the latest version with all tables."""
        conn = _autocommit()
        assert apply_migrations(conn, now=1.0) == LATEST
        assert schema_version(conn) == LATEST
        expected = {"schema_migrations", "configs", "config_current", "canaries", "ticks"}
        assert expected | {"decisions", "outbox"} <= _tables(conn)
        conn.close()

    def test_second_run_is_a_no_op(self) -> None:
        """Applying again changes nothing, not even the recorded times."""
        conn = _autocommit()
        apply_migrations(conn, now=1.0)
        apply_migrations(conn, now=2.0)
        rows = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
        assert rows == [(v, 1.0) for v in range(1, LATEST + 1)]
        conn.close()

    def test_later_migrations_apply_on_top(self) -> None:
        """A database at version 1 gets only the migrations it lacks, in order."""
        conn = _autocommit()
        apply_migrations(conn, now=1.0, migrations=[["CREATE TABLE a (x)"]])
        more = [["CREATE TABLE a (x)"], ["CREATE TABLE b (y)"], ["ALTER TABLE b ADD z"]]
        assert apply_migrations(conn, now=2.0, migrations=more) == 3
        assert conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall() == [
            (1, 1.0),
            (2, 2.0),
            (3, 2.0),
        ]
        conn.close()

    def test_failing_migration_rolls_back_whole(self) -> None:
        """A migration that fails half-way leaves neither its tables nor its ledger row."""
        conn = _autocommit()
        broken = [["CREATE TABLE a (x)"], ["CREATE TABLE b (y)", "CREATE TABLE a (x)"]]
        with pytest.raises(sqlite3.OperationalError):
            apply_migrations(conn, now=1.0, migrations=broken)
        assert schema_version(conn) == 1
        assert "b" not in _tables(conn)
        assert not conn.in_transaction
        conn.close()

    def test_newer_database_is_refused(self) -> None:
        """A database at a version the code does not know raises StoreError."""
        conn = _autocommit()
        apply_migrations(conn, now=1.0, migrations=[["CREATE TABLE a (x)"], ["CREATE TABLE b (y)"]])
        with pytest.raises(StoreError, match="newer"):
            apply_migrations(conn, now=2.0, migrations=[["CREATE TABLE a (x)"]])
        conn.close()


class TestStoreMigrations:
    """SqliteStore.open applies and records migrations."""

    async def test_version_recorded_once(self, db_path: Path) -> None:
        """Opening twice records each migration once with its first time."""
        for _ in range(2):
            store = SqliteStore(str(db_path))
            await store.open()
            await store.close()
        ledger = _ledger(db_path)
        assert [v for v, _ in ledger] == list(range(1, LATEST + 1))

    async def test_wal_mode_persists(self, db_path: Path) -> None:
        """The file is left in WAL journal mode."""
        store = SqliteStore(str(db_path))
        await store.open()
        await store.close()
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.close()

    async def test_newer_schema_refuses_to_open(self, db_path: Path) -> None:
        """A database written by a newer canaryd raises StoreError and the store stays shut."""
        store = SqliteStore(str(db_path))
        await store.open()
        await store.close()
        with sqlite3.connect(db_path) as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (LATEST + 1,))
        conn.close()
        again = SqliteStore(str(db_path))
        with pytest.raises(StoreError, match="newer"):
            await again.open()
        with pytest.raises(StoreError, match="not open"):
            await again.get_canary("c1")
