"""The SQLite schema as an ordered list of migrations.

Migration ``n`` (1-based) is ``MIGRATIONS[n - 1]``: a list of SQL statements applied in one
transaction together with its row in ``schema_migrations(version, applied_at)``. Applying is
idempotent: a database already at the latest version is left alone, and one written by a newer
canaryd (a version this code does not know) refuses to open rather than be misread.

Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from analyzer.errors import StoreError

__all__ = ["MIGRATIONS", "apply_migrations", "schema_version"]

_V1_CONFIGS = (
    """CREATE TABLE configs (
        name TEXT NOT NULL,
        hash TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (name, hash)
    )""",
    "CREATE INDEX configs_by_hash ON configs (hash, created_at)",
    """CREATE TABLE config_current (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL,
        FOREIGN KEY (name, hash) REFERENCES configs (name, hash)
    )""",
)

_V1_CANARIES = (
    """CREATE TABLE canaries (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        service TEXT NOT NULL,
        config_name TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        baseline TEXT NOT NULL,
        canary TEXT NOT NULL,
        stages TEXT NOT NULL,
        webhook_url TEXT,
        mode TEXT NOT NULL,
        metadata TEXT NOT NULL,
        variables TEXT NOT NULL,
        created_at REAL NOT NULL,
        phase TEXT NOT NULL,
        stage_index INTEGER NOT NULL,
        stage_started_at REAL NOT NULL,
        analysis_started_at REAL,
        paused_from TEXT,
        decision_seq INTEGER NOT NULL,
        tick_seq INTEGER NOT NULL,
        last_reason TEXT NOT NULL,
        last_score REAL,
        updated_at REAL NOT NULL,
        registration TEXT NOT NULL
    )""",
    "CREATE INDEX canaries_by_created ON canaries (created_at)",
    "CREATE INDEX canaries_by_phase ON canaries (phase, created_at)",
)

_V1_HISTORY = (
    """CREATE TABLE ticks (
        canary_id TEXT NOT NULL REFERENCES canaries (id),
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        phase TEXT NOT NULL,
        stage_index INTEGER NOT NULL,
        verdict TEXT NOT NULL,
        score REAL,
        reason TEXT NOT NULL,
        results TEXT NOT NULL,
        duration_s REAL NOT NULL,
        PRIMARY KEY (canary_id, seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE decisions (
        canary_id TEXT NOT NULL REFERENCES canaries (id),
        seq INTEGER NOT NULL,
        action TEXT NOT NULL,
        reason TEXT NOT NULL,
        score REAL,
        stage_index INTEGER NOT NULL,
        weight REAL NOT NULL,
        decided_at REAL NOT NULL,
        phase_after TEXT NOT NULL,
        evidence TEXT NOT NULL,
        PRIMARY KEY (canary_id, seq)
    ) WITHOUT ROWID""",
)

_V1_OUTBOX = (
    """CREATE TABLE outbox (
        delivery_id TEXT PRIMARY KEY,
        canary_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        url TEXT NOT NULL,
        body BLOB NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at REAL NOT NULL,
        last_error TEXT NOT NULL,
        created_at REAL NOT NULL,
        delivered_at REAL,
        UNIQUE (canary_id, seq),
        FOREIGN KEY (canary_id, seq) REFERENCES decisions (canary_id, seq)
    )""",
    # The head of each canary's queue, and the due lookup over the pending rows only.
    "CREATE INDEX outbox_pending_by_canary ON outbox (canary_id, seq) WHERE state = 'pending'",
    "CREATE INDEX outbox_pending_by_due ON outbox (next_attempt_at) WHERE state = 'pending'",
    "CREATE INDEX outbox_by_state ON outbox (state)",
)

# v2: the canary's pause time and scored-interval count, which a restart must not lose (the
# stage timer skips a pause; an interval already scored is not scored again).
_V2_CANARY_TIMERS = (
    "ALTER TABLE canaries ADD COLUMN paused_at REAL",
    "ALTER TABLE canaries ADD COLUMN intervals_scored INTEGER NOT NULL DEFAULT 0",
)

# v3: registrations' Idempotency-Key headers (global, not per token), with the hash of the body
# each came with and the canary it created: a retry after a lost answer finds its canary.
_V3_IDEMPOTENCY = (
    """CREATE TABLE idempotency_keys (
        key TEXT PRIMARY KEY,
        body_hash TEXT NOT NULL,
        canary_id TEXT NOT NULL REFERENCES canaries (id),
        created_at REAL NOT NULL
    )""",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (*_V1_CONFIGS, *_V1_CANARIES, *_V1_HISTORY, *_V1_OUTBOX),
    _V2_CANARY_TIMERS,
    _V3_IDEMPOTENCY,
)
"""Every migration in order; the schema version is the number applied."""

_CREATE_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at REAL NOT NULL
)"""


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to the database (0 for a new one)."""
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])


def apply_migrations(
    conn: sqlite3.Connection,
    now: float,
    migrations: Sequence[Sequence[str]] = MIGRATIONS,
) -> int:
    """Bring the database up to ``len(migrations)``, one transaction per migration.

    The connection must be in autocommit mode (``isolation_level=None``). Returns the version
    reached; raises :class:`StoreError` if the database is newer than ``migrations``.
    """
    conn.execute(_CREATE_LEDGER)
    for version, statements in enumerate(migrations, start=1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            _apply_one(conn, version, statements, now, latest=len(migrations))
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    _refuse_newer(conn, len(migrations))
    return len(migrations)


def _apply_one(
    conn: sqlite3.Connection, version: int, statements: Sequence[str], now: float, *, latest: int
) -> None:
    # Re-read inside the write lock: another process may have migrated meanwhile.
    current = schema_version(conn)
    _refuse_newer(conn, latest, current)
    if current >= version:
        return
    if current != version - 1:
        raise StoreError(f"schema is at version {current}, cannot apply migration {version}")
    for statement in statements:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, now)
    )


def _refuse_newer(conn: sqlite3.Connection, latest: int, current: int | None = None) -> None:
    current = schema_version(conn) if current is None else current
    if current > latest:
        raise StoreError(
            f"database schema version {current} is newer than this canaryd knows ({latest}); "
            "upgrade canaryd or use another database"
        )
