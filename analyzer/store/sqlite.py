"""The embedded store: one SQLite file in WAL mode, driven from one worker thread.

Every public method is a coroutine that runs its SQL on the file's own thread
(:class:`~analyzer.store.sqlite_thread.SqliteThread`), so the event loop never blocks on disk;
writes are serialised in-process by that thread and against other processes by
``BEGIN IMMEDIATE`` and ``busy_timeout``.

Fencing: :meth:`SqliteStore.save_tick` and :meth:`SqliteStore.save_decision` read the stored
canary's ``tick_seq`` and ``decision_seq`` inside their write transaction and raise
:class:`~analyzer.errors.Conflict`, writing nothing, unless both are what the caller started
from: ``expected_tick_seq`` and the decision count before this tick for a tick;
``expected_decision_seq`` and the unchanged ``tick_seq`` for an out-of-tick decision. So a tick
cannot overwrite an abort that landed while it was judging, nor the reverse.

sqlite3 errors (and rows that do not decode) become :class:`~analyzer.errors.StoreError`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from analyzer.errors import NotFound, StoreError
from analyzer.model import Canary, Decision, Delivery, DeliveryState, Phase, Tick
from analyzer.store.codec import (
    canary_from_row,
    canary_params,
    config_from_row,
    config_params,
    decision_from_row,
    delivery_from_row,
    delivery_params,
    load_json,
    tick_from_row,
    tick_params,
)
from analyzer.store.protocol import CanaryPage, ConfigVersion, IdempotencyKey
from analyzer.store.sqlite_sql import (
    CURRENT_CONFIGS,
    DUE_DELIVERIES,
    INSERT_CONFIG,
    INSERT_TICK,
    PAGE_CANARIES,
    UPDATE_CANARY,
    UPDATE_DELIVERY,
    check_fence,
    create_once,
    decode_cursor,
    encode_cursor,
    insert_decision,
)
from analyzer.store.sqlite_thread import SqliteThread, immediate

__all__ = ["SqliteStore"]


class SqliteStore:
    """The :class:`~analyzer.store.Store` on one SQLite file (``path``)."""

    def __init__(self, path: str) -> None:
        self._thread = SqliteThread(path)

    async def ready(self) -> bool:
        """False while another process holds the write lock (probed only after a busy
        failure, with a short wait)."""
        return await self._thread.ready()

    async def open(self) -> None:
        """Open the file (creating it), set the pragmas and apply pending migrations."""
        await self._thread.open()

    async def close(self) -> None:
        """Close the connection (checkpointing the WAL) and stop the thread."""
        await self._thread.close()

    # configs -----------------------------------------------------------------------------------
    async def put_config(self, version: ConfigVersion) -> None:
        """Store a config version (kept once per name and hash) and make it current."""

        def work(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                conn.execute(INSERT_CONFIG, config_params(version))
                conn.execute(
                    "INSERT INTO config_current (name, hash) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash",
                    (version.name, version.hash),
                )

        await self._thread.run(work)

    async def put_config_version(self, version: ConfigVersion) -> None:
        """Store a config version (once per name and hash) without making it current."""
        await self._thread.run(lambda conn: conn.execute(INSERT_CONFIG, config_params(version)))

    async def get_config(self, name: str) -> ConfigVersion | None:
        """The current version of a named config."""
        return await self._thread.fetch_one(
            f"{CURRENT_CONFIGS} WHERE p.name = ?", (name,), config_from_row
        )

    async def get_config_version(self, config_hash: str) -> ConfigVersion | None:
        """A config by content hash (the first stored with that hash)."""
        return await self._thread.fetch_one(
            "SELECT * FROM configs WHERE hash = ? ORDER BY created_at, name LIMIT 1",
            (config_hash,),
            config_from_row,
        )

    async def list_configs(self) -> list[ConfigVersion]:
        """Current version of every named config, by name."""
        return await self._thread.fetch_all(
            f"{CURRENT_CONFIGS} ORDER BY c.name", (), config_from_row
        )

    # canaries ----------------------------------------------------------------------------------
    async def create_canary(
        self,
        canary: Canary,
        registration: dict[str, Any],
        idempotency: IdempotencyKey | None = None,
    ) -> str:
        """Store a new canary (and its idempotency key); the id stored: an earlier canary's when
        the key is taken by the same body. :class:`Conflict` if the id is taken, or the key by
        another body."""

        def work(conn: sqlite3.Connection) -> str:
            with immediate(conn):
                return create_once(conn, canary, registration, idempotency)

        return await self._thread.run(work)

    async def get_idempotency(self, key: str) -> IdempotencyKey | None:
        """The registration an idempotency key was used for."""
        return await self._thread.fetch_one(
            "SELECT * FROM idempotency_keys WHERE key = ?",
            (key,),
            lambda row: IdempotencyKey(
                key=str(row["key"]),
                body_hash=str(row["body_hash"]),
                canary_id=str(row["canary_id"]),
                created_at=float(row["created_at"]),
            ),
        )

    async def get_canary(self, canary_id: str) -> Canary | None:
        """One canary's current state."""
        return await self._thread.fetch_one(
            "SELECT * FROM canaries WHERE id = ?", (canary_id,), canary_from_row
        )

    async def get_registration(self, canary_id: str) -> dict[str, Any] | None:
        """The registration body a canary was created from (beyond the Store protocol)."""
        return await self._thread.fetch_one(
            "SELECT registration FROM canaries WHERE id = ?",
            (canary_id,),
            lambda row: _json_object(row["registration"]),
        )

    async def list_canaries(self, phase: Phase | None = None) -> list[Canary]:
        """All canaries (optionally in one phase), newest first."""
        if phase is None:
            return await self._thread.fetch_all(
                "SELECT * FROM canaries ORDER BY created_at DESC, rowid DESC", (), canary_from_row
            )
        return await self._thread.fetch_all(
            "SELECT * FROM canaries WHERE phase = ? ORDER BY created_at DESC, rowid DESC",
            (phase.value,),
            canary_from_row,
        )

    async def page_canaries(
        self, phase: Phase | None, *, limit: int, cursor: str | None
    ) -> CanaryPage:
        """Up to ``limit`` canaries newest first, after ``cursor``; a cursor when more follow."""
        at, row = decode_cursor(cursor) if cursor is not None else (None, None)
        # one row more than the page: whether another page follows
        params = {"phase": phase.value if phase else None, "at": at, "row": row, "limit": limit + 1}

        def work(conn: sqlite3.Connection) -> list[tuple[Canary, int]]:
            rows = conn.execute(PAGE_CANARIES, params)
            return [(canary_from_row(r), int(r["row_id"])) for r in rows]

        rows = await self._thread.run(work)
        page = rows[:limit]
        if len(rows) <= limit or not page:
            return CanaryPage(canaries=[c for c, _ in page], cursor=None)
        last, last_row = page[-1]
        return CanaryPage(
            canaries=[c for c, _ in page], cursor=encode_cursor(last.created_at, last_row)
        )

    async def save_tick(
        self,
        canary: Canary,
        tick: Tick,
        decision: Decision | None,
        delivery: Delivery | None,
        *,
        expected_tick_seq: int,
    ) -> None:
        """Atomically: the canary's new state, the tick, and the decision with its outbox row."""
        if decision is None and delivery is not None:
            raise StoreError("a delivery needs the decision it delivers")
        decisions_before = canary.decision_seq - (0 if decision is None else 1)

        def work(conn: sqlite3.Connection) -> None:
            params = (canary_params(canary), tick_params(tick))
            with immediate(conn):
                check_fence(
                    conn, canary.id, tick_seq=expected_tick_seq, decision_seq=decisions_before
                )
                conn.execute(UPDATE_CANARY, params[0])
                conn.execute(INSERT_TICK, params[1])
                if decision is not None:
                    insert_decision(conn, decision, delivery)

        await self._thread.run(work)

    async def save_decision(
        self,
        canary: Canary,
        decision: Decision,
        delivery: Delivery | None,
        *,
        expected_decision_seq: int,
    ) -> None:
        """Atomically: a decision made outside a tick (abort, promote, pause, resume)."""

        def work(conn: sqlite3.Connection) -> None:
            params = canary_params(canary)
            with immediate(conn):
                check_fence(
                    conn, canary.id, tick_seq=canary.tick_seq, decision_seq=expected_decision_seq
                )
                conn.execute(UPDATE_CANARY, params)
                insert_decision(conn, decision, delivery)

        await self._thread.run(work)

    async def list_ticks(self, canary_id: str, limit: int = 1000) -> list[Tick]:
        """A canary's ticks, oldest first (the newest ``limit``)."""
        return await self._thread.fetch_all(
            "SELECT * FROM (SELECT * FROM ticks WHERE canary_id = ? ORDER BY seq DESC LIMIT ?)"
            " ORDER BY seq",
            (canary_id, limit),
            tick_from_row,
        )

    async def ticks_after(self, canary_id: str, after_seq: int, limit: int) -> list[Tick]:
        """Up to ``limit`` of a canary's ticks with ``seq > after_seq``, oldest first."""
        return await self._thread.fetch_all(
            "SELECT * FROM ticks WHERE canary_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (canary_id, after_seq, limit),
            tick_from_row,
        )

    async def list_decisions(self, canary_id: str) -> list[Decision]:
        """A canary's decisions in order."""
        return await self._thread.fetch_all(
            "SELECT * FROM decisions WHERE canary_id = ? ORDER BY seq",
            (canary_id,),
            decision_from_row,
        )

    # outbox ------------------------------------------------------------------------------------
    async def list_deliveries(self, canary_id: str) -> list[Delivery]:
        """A canary's deliveries in decision order."""
        return await self._thread.fetch_all(
            "SELECT * FROM outbox WHERE canary_id = ? ORDER BY seq", (canary_id,), delivery_from_row
        )

    async def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        """Per canary the oldest pending delivery, if due by ``now``; oldest first."""
        return await self._thread.fetch_all(DUE_DELIVERIES, (now, limit), delivery_from_row)

    async def update_delivery(self, delivery: Delivery) -> None:
        """Record an attempt's outcome; :class:`NotFound` if the delivery is unknown."""

        def work(conn: sqlite3.Connection) -> None:
            if conn.execute(UPDATE_DELIVERY, delivery_params(delivery)).rowcount == 0:
                raise NotFound(f"no delivery {delivery.delivery_id!r}")

        await self._thread.run(work)

    async def delivery_counts(self) -> dict[str, int]:
        """Number of deliveries by state, every state present."""
        rows = await self._thread.fetch_all(
            "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state",
            (),
            lambda row: (str(row["state"]), int(row["n"])),
        )
        return {**{state.value: 0 for state in DeliveryState}, **dict(rows)}


def _json_object(text: str) -> dict[str, Any]:
    value = load_json(text)
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value
