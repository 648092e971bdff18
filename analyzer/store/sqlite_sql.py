"""The SQL of :class:`~analyzer.store.sqlite.SqliteStore` and the work it runs in one transaction.

Statements are built from the codec's column tuples (module constants, never user input). The
transactional pieces here run on the store's thread inside ``BEGIN IMMEDIATE``: the fence of a
write (:func:`check_fence`), a decision with its outbox row, and a registration with its
idempotency key (:func:`create_once`). Page cursors of the canary list are opaque to callers:
:func:`encode_cursor` and :func:`decode_cursor` are their one format.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from analyzer.errors import Conflict, InvalidInput, NotFound
from analyzer.model import Canary, Decision, Delivery
from analyzer.store.codec import (
    CANARY_COLUMNS,
    DECISION_COLUMNS,
    DELIVERY_COLUMNS,
    TICK_COLUMNS,
    canary_params,
    decision_params,
    delivery_params,
    dump_json,
)
from analyzer.store.protocol import IdempotencyKey

__all__ = [
    "CURRENT_CONFIGS",
    "DUE_DELIVERIES",
    "INSERT_CONFIG",
    "INSERT_TICK",
    "PAGE_CANARIES",
    "UPDATE_CANARY",
    "UPDATE_DELIVERY",
    "check_fence",
    "create_once",
    "decode_cursor",
    "encode_cursor",
    "insert_decision",
]


def _insert(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(columns)
    values = ", ".join(f":{c}" for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({values})"  # noqa: S608 -- constant columns


def _update(table: str, columns: Sequence[str], key: str) -> str:
    assignments = ", ".join(f"{c} = :{c}" for c in columns if c != key)
    return f"UPDATE {table} SET {assignments} WHERE {key} = :{key}"  # noqa: S608 -- constant columns


_INSERT_CANARY = _insert("canaries", (*CANARY_COLUMNS, "registration"))
# A canary's metadata is written once, at registration: the fleet's in-memory copy of a live
# canary does not hold it (M6), and no later write may wipe it.
UPDATE_CANARY = _update("canaries", [c for c in CANARY_COLUMNS if c != "metadata"], "id")
INSERT_TICK = _insert("ticks", TICK_COLUMNS)
_INSERT_DECISION = _insert("decisions", DECISION_COLUMNS)
_INSERT_DELIVERY = _insert("outbox", DELIVERY_COLUMNS)
UPDATE_DELIVERY = """UPDATE outbox
    SET state = :state, attempts = :attempts, next_attempt_at = :next_attempt_at,
        last_error = :last_error, delivered_at = :delivered_at
    WHERE delivery_id = :delivery_id"""
INSERT_CONFIG = """INSERT OR IGNORE INTO configs (name, hash, body, created_at)
    VALUES (:name, :hash, :body, :created_at)"""
CURRENT_CONFIGS = """SELECT c.* FROM config_current AS p
    JOIN configs AS c ON c.name = p.name AND c.hash = p.hash"""
# The head of each canary's pending queue, and only if it is due: per-canary decision order.
DUE_DELIVERIES = """SELECT o.* FROM outbox AS o
    JOIN (SELECT canary_id, MIN(seq) AS seq FROM outbox WHERE state = 'pending'
          GROUP BY canary_id) AS head
      ON o.canary_id = head.canary_id AND o.seq = head.seq
    WHERE o.next_attempt_at <= ?
    ORDER BY o.created_at, o.canary_id
    LIMIT ?"""
# Newest first, keyset-paged on (created_at, rowid): canaries_by_created and canaries_by_phase
# hold the rowid, so a page is an index range however deep it starts.
PAGE_CANARIES = """SELECT rowid AS row_id, * FROM canaries
    WHERE (:phase IS NULL OR phase = :phase)
      AND (:at IS NULL OR created_at < :at OR (created_at = :at AND rowid < :row))
    ORDER BY created_at DESC, rowid DESC
    LIMIT :limit"""


def encode_cursor(created_at: float, row_id: int) -> str:
    """The opaque cursor of the page that starts after this row."""
    return base64.urlsafe_b64encode(json.dumps([created_at, row_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, int]:
    """(created_at, rowid) of a cursor :func:`encode_cursor` made; InvalidInput otherwise."""
    try:
        at, row = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        if isinstance(at, bool) or not isinstance(at, int | float) or type(row) is not int:
            raise TypeError("not [number, integer]")
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError):
        raise InvalidInput("cursor", "not a cursor this API gave out") from None
    return float(at), row


def check_fence(
    conn: sqlite3.Connection, canary_id: str, *, tick_seq: int, decision_seq: int
) -> None:
    """Raise unless the stored canary is still at ``tick_seq`` and ``decision_seq``."""
    row = conn.execute(
        "SELECT tick_seq, decision_seq FROM canaries WHERE id = ?", (canary_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no canary {canary_id!r}")
    stored = (int(row["tick_seq"]), int(row["decision_seq"]))
    if stored != (tick_seq, decision_seq):
        raise Conflict(
            f"canary {canary_id!r} changed meanwhile: stored tick_seq/decision_seq "
            f"{stored[0]}/{stored[1]}, expected {tick_seq}/{decision_seq}"
        )


def insert_decision(
    conn: sqlite3.Connection, decision: Decision, delivery: Delivery | None
) -> None:
    """A decision's row and, when it sends one, its outbox row."""
    conn.execute(_INSERT_DECISION, decision_params(decision))
    if delivery is not None:
        conn.execute(_INSERT_DELIVERY, delivery_params(delivery))


def create_once(
    conn: sqlite3.Connection,
    canary: Canary,
    registration: dict[str, Any],
    idempotency: IdempotencyKey | None,
) -> str:
    """Insert a canary (and its idempotency key); the id of the canary that holds the key when
    it was taken by the same body, :class:`Conflict` when by another or the id is taken."""
    if idempotency is not None:
        row = conn.execute(
            "SELECT body_hash, canary_id FROM idempotency_keys WHERE key = ?", (idempotency.key,)
        ).fetchone()
        if row is not None:
            if row["body_hash"] != idempotency.body_hash:
                raise Conflict(_KEY_REUSED)
            return str(row["canary_id"])
    if conn.execute("SELECT 1 FROM canaries WHERE id = ?", (canary.id,)).fetchone():
        raise Conflict(f"canary {canary.id!r} already exists")
    conn.execute(_INSERT_CANARY, {**canary_params(canary), "registration": dump_json(registration)})
    if idempotency is not None:
        conn.execute(
            "INSERT INTO idempotency_keys (key, body_hash, canary_id, created_at)"
            " VALUES (:key, :body_hash, :canary_id, :created_at)",
            {
                "key": idempotency.key,
                "body_hash": idempotency.body_hash,
                "canary_id": canary.id,
                "created_at": idempotency.created_at,
            },
        )
    return canary.id


_KEY_REUSED = "Idempotency-Key was already used to register a canary with a different body"
