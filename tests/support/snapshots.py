"""The daemon's SQLite file as the end-to-end tests read it: from a copy, and checked.

- :func:`snapshot_db` reads a stopped daemon's database from a copy of its files, so SQLite's
  recovery runs on the copy and the crashed file stays as it was for the next daemon.
- :func:`assert_consistent`: every canary's rows agree with each other.
- :func:`assert_same_state` and :func:`assert_same_timers`: a restarted daemon shows a canary as
  the stored rows left it; :func:`assert_warmup_from_registration` and
  :func:`assert_stage_end_on_stored_timer`: its warm-up and stage ran on the stored timers.
- :func:`seed_fleet` fills a fresh database with many parked canaries (a slow start-up).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyzer.clock import SystemClock
from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import parse_config
from analyzer.model import Canary, Side, Stage
from analyzer.store.sqlite import SqliteStore

__all__ = [
    "NOTIFYING",
    "TERMINAL",
    "DbSnapshot",
    "assert_consistent",
    "assert_same_state",
    "assert_same_timers",
    "assert_stage_end_on_stored_timer",
    "assert_warmup_from_registration",
    "db_path",
    "seed_fleet",
    "snapshot_db",
]

NOTIFYING = frozenset({"rollback", "step", "promote"})
TERMINAL = frozenset({"promoted", "rolled_back", "aborted", "failed"})


def db_path(settings: dict[str, str]) -> Path:
    """The SQLite file of ``CANARYD_DATABASE_URL``."""
    return Path(settings["CANARYD_DATABASE_URL"].removeprefix("sqlite:///"))


@dataclass(frozen=True)
class DbSnapshot:
    """Rows of the daemon's SQLite file, by table, each row a dict."""

    canaries: dict[str, dict[str, Any]]
    ticks: dict[str, list[dict[str, Any]]]
    decisions: dict[str, list[dict[str, Any]]]
    outbox: dict[str, list[dict[str, Any]]]

    def live(self) -> set[str]:
        """Canaries not finished."""
        return {cid for cid, row in self.canaries.items() if row["phase"] not in TERMINAL}


def snapshot_db(path: Path) -> DbSnapshot:
    """Read the database of a stopped daemon from a copy of its files (the main file and its
    WAL): the original stays exactly as the crash left it."""
    with tempfile.TemporaryDirectory(prefix="canaryd-snapshot-") as tmp:
        copy = Path(tmp) / path.name
        for suffix in ("", "-wal"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                shutil.copyfile(source, copy.with_name(copy.name + suffix))
        conn = sqlite3.connect(copy)
        try:
            conn.row_factory = sqlite3.Row
            return DbSnapshot(
                canaries={r["id"]: dict(r) for r in conn.execute("SELECT * FROM canaries")},
                ticks=_by_canary(conn, "SELECT * FROM ticks ORDER BY canary_id, seq"),
                decisions=_by_canary(conn, "SELECT * FROM decisions ORDER BY canary_id, seq"),
                outbox=_by_canary(conn, "SELECT * FROM outbox ORDER BY canary_id, seq"),
            )
        finally:
            conn.close()


def _by_canary(conn: sqlite3.Connection, sql: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(sql):
        out.setdefault(row["canary_id"], []).append(dict(row))
    return out


def assert_consistent(snapshot: DbSnapshot) -> None:
    """Every canary's rows agree: ticks and decisions numbered 1..n as its counters say, an
    outbox row for every decision that notifies (and none for another), a finished canary's
    phase as its last decision left it."""
    for cid, row in snapshot.canaries.items():
        ticks = [t["seq"] for t in snapshot.ticks.get(cid, [])]
        assert ticks == list(range(1, row["tick_seq"] + 1)), (cid, ticks, row["tick_seq"])
        decisions = snapshot.decisions.get(cid, [])
        seqs = [d["seq"] for d in decisions]
        assert seqs == list(range(1, row["decision_seq"] + 1)), (cid, seqs, row["decision_seq"])
        live = row["mode"] == "live" and row["webhook_url"]
        wanted = {f"{cid}:{d['seq']}" for d in decisions if live and d["action"] in NOTIFYING}
        outbox = {o["delivery_id"] for o in snapshot.outbox.get(cid, [])}
        assert outbox == wanted, (cid, outbox, wanted)
        if row["phase"] in TERMINAL:
            assert decisions, cid
            assert decisions[-1]["phase_after"] == row["phase"], (cid, decisions[-1])


def assert_same_state(snapshot: DbSnapshot, cid: str, after: dict[str, Any]) -> None:
    """The GET after a restart shows the canary as the crash left it in the database."""
    row = snapshot.canaries[cid]
    assert (after["phase"], after["stage"]) == (row["phase"], row["stage_index"]), after["reason"]
    assert after["created_at"] == row["created_at"]
    ticks = [(t["seq"], t["at"], t["phase"], t["stage"]) for t in after["ticks"]]
    stored = [
        (t["seq"], t["at"], t["phase"], t["stage_index"]) for t in snapshot.ticks.get(cid, [])
    ]
    assert ticks[: len(stored)] == stored, "the ticks before the crash changed"
    assert [t[0] for t in ticks] == list(range(1, len(ticks) + 1)), "a tick seq repeats or skips"
    decisions = [(d["seq"], d["action"], d["decided_at"]) for d in after["decisions"]]
    stored_d = [(d["seq"], d["action"], d["decided_at"]) for d in snapshot.decisions.get(cid, [])]
    assert decisions[: len(stored_d)] == stored_d, "the decisions before the crash changed"


def assert_same_timers(before: DbSnapshot, after: DbSnapshot, cid: str) -> None:
    """Stored timers survive a restart unchanged unless a decision moved the canary on."""
    old, new = before.canaries[cid], after.canaries[cid]
    assert new["created_at"] == old["created_at"]
    if new["decision_seq"] == old["decision_seq"] and new["phase"] == old["phase"]:
        assert new["stage_started_at"] == old["stage_started_at"], "stage timer reset"
        assert new["analysis_started_at"] == old["analysis_started_at"], "analysis timer reset"


def assert_warmup_from_registration(snapshot: DbSnapshot, cid: str, warmup_s: float) -> None:
    """The warm-up is counted from the stored registration time across restarts: every warm-up
    poll says the time left from ``created_at``; the analysis began at the first poll at or
    after the warm-up's end — not cut short, and not restarted from zero by a restart."""
    row = snapshot.canaries[cid]
    ends = row["created_at"] + warmup_s
    ticks = snapshot.ticks[cid]
    for tick in ticks:
        if tick["phase"] == "warmup":
            left = float(tick["reason"].removeprefix("warming up, ").removesuffix("s left"))
            assert abs(left - (ends - tick["at"])) <= 0.5 + 1e-6, tick
    [start] = [t for t in ticks if t["reason"] == "analysis started"]
    assert start["at"] == row["analysis_started_at"] >= ends, (start, row)
    before = [t["at"] for t in ticks if t["seq"] < start["seq"]]
    assert all(at < ends for at in before), (before, ends)


def assert_stage_end_on_stored_timer(state: dict[str, Any], stage_end: float) -> None:
    """The canary's first decision, at the end of its first stage, came at the first poll at or
    after the stored end (``stage_end``): not before it, and not a stage's length after a
    restart (there would be polls between its end and the decision). ``state``: the API's GET."""
    first = state["decisions"][0]
    assert first["decided_at"] >= stage_end, first
    between = [t["at"] for t in state["ticks"] if stage_end <= t["at"] < first["decided_at"]]
    assert not between, (stage_end, between, first)


async def seed_fleet(db: Path, config: dict[str, Any], count: int) -> None:
    """A fresh database holding ``count`` canaries in warm-up under ``config``.

    One canary is stored through the store; the rest are copies of its row made in one
    statement (a store transaction per canary, each with its fsync, would take seconds).
    """
    store = SqliteStore(str(db))
    await store.open()
    try:
        version = await Catalog(store, SystemClock()).put(parse_config(config))
        now = time.time()
        canary = Canary(
            id=uuid.uuid4().hex,
            name="seed",
            service="seed",
            config_name=version.name,
            config_hash=version.hash,
            baseline=Side(labels={"deployment": "seed-baseline"}),
            canary=Side(labels={"deployment": "seed-canary"}),
            stages=(Stage(weight=100, duration_s=60),),
            webhook_url=None,
            created_at=now,
            stage_started_at=now,
        )
        await store.create_canary(canary, {})
    finally:
        await store.close()
    conn = sqlite3.connect(db)
    try:
        rest = [r[1] for r in conn.execute("PRAGMA table_info(canaries)") if r[1] != "id"]
        copy = (
            "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < ?) "
            f"INSERT INTO canaries (id, {', '.join(rest)}) "
            f"SELECT c.id || '-' || k.n, {', '.join('c.' + r for r in rest)} FROM canaries AS c, k"
        )
        with conn:
            conn.execute(copy, (count - 1,))
    finally:
        conn.close()
