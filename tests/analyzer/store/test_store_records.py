"""SqliteStore: opening and closing, config versions, canary round trips, the JSON codec,
and everything surviving a reopen."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analyzer.errors import Conflict, StoreError
from analyzer.model import Action, Mode, Phase
from analyzer.store.codec import dump_json, load_json
from analyzer.store.protocol import ConfigVersion
from analyzer.store.sqlite import SqliteStore
from support.fakes import T0
from support.store_rows import make_canary, next_tick, with_ticks


class TestLifecycle:
    """Opening and closing."""

    async def test_use_before_open_fails(self, db_path: Path) -> None:
        """A store that was never opened raises StoreError."""
        with pytest.raises(StoreError, match="not open"):
            await SqliteStore(str(db_path)).list_canaries()

    async def test_use_after_close_fails(self, db_path: Path) -> None:
        """A closed store raises StoreError; closing twice is harmless."""
        store = SqliteStore(str(db_path))
        await store.open()
        await store.close()
        await store.close()
        with pytest.raises(StoreError, match="not open"):
            await store.get_canary("c1")

    async def test_unopenable_path_is_a_store_error(self, tmp_path: Path) -> None:
        """A path that cannot be a database file raises StoreError, not sqlite3's error."""
        store = SqliteStore(str(tmp_path / "missing-dir" / "canaryd.db"))
        with pytest.raises(StoreError, match="sqlite"):
            await store.open()


class TestConfigs:
    """Config versions and the current pointer per name."""

    async def test_current_version_follows_latest_put(self, store: SqliteStore) -> None:
        """put_config makes the new version current; the old stays reachable by hash."""
        v1 = ConfigVersion(name="golden", hash="h1", body={"alpha": 0.05}, created_at=T0)
        v2 = ConfigVersion(name="golden", hash="h2", body={"alpha": 0.01}, created_at=T0 + 1)
        await store.put_config(v1)
        await store.put_config(v2)
        assert await store.get_config("golden") == v2
        assert await store.get_config_version("h1") == v1
        assert await store.list_configs() == [v2]

    async def test_putting_an_old_version_again_makes_it_current(self, store: SqliteStore) -> None:
        """Re-putting a stored version keeps its first created_at and makes it current."""
        v1 = ConfigVersion(name="golden", hash="h1", body={"a": 1}, created_at=T0)
        v2 = ConfigVersion(name="golden", hash="h2", body={"a": 2}, created_at=T0 + 1)
        for version in (v1, v2, replace(v1, created_at=T0 + 2)):
            await store.put_config(version)
        assert await store.get_config("golden") == v1

    async def test_unknown_names_and_hashes(self, store: SqliteStore) -> None:
        """Unknown configs read as None; list_configs is sorted by name."""
        assert await store.get_config("nope") is None
        assert await store.get_config_version("nope") is None
        for name in ("b", "a"):
            await store.put_config(ConfigVersion(name=name, hash=name, body={}, created_at=T0))
        assert [c.name for c in await store.list_configs()] == ["a", "b"]


class TestCanaries:
    """Creating, reading and listing canaries."""

    async def test_round_trip(self, store: SqliteStore) -> None:
        """Every Canary field survives storage, including optional and nested ones."""
        canary = make_canary(
            mode=Mode.DRY_RUN,
            phase=Phase.PAUSED,
            paused_from=Phase.RUNNING,
            analysis_started_at=T0 + 30.5,
            last_score=61.25,
            last_reason="score 61.25 < 75",
            webhook_url=None,
        )
        registration = {"name": canary.name, "stages": [{"weight": 5, "duration": "10m"}]}
        await store.create_canary(canary, registration)
        assert await store.get_canary(canary.id) == canary
        assert await store.get_registration(canary.id) == registration

    async def test_duplicate_id_conflicts(self, store: SqliteStore) -> None:
        """Creating a canary twice raises Conflict and keeps the first."""
        await store.create_canary(make_canary(), {})
        with pytest.raises(Conflict):
            await store.create_canary(make_canary(name="other"), {})
        stored = await store.get_canary("c1")
        assert stored is not None
        assert stored.name == "checkout-2.3.1"

    async def test_list_newest_first_and_by_phase(self, store: SqliteStore) -> None:
        """list_canaries orders newest first and filters by phase."""
        await store.create_canary(make_canary("old", created_at=T0), {})
        await store.create_canary(make_canary("new", created_at=T0 + 5, phase=Phase.RUNNING), {})
        await store.create_canary(make_canary("mid", created_at=T0 + 1), {})
        assert [c.id for c in await store.list_canaries()] == ["new", "mid", "old"]
        assert [c.id for c in await store.list_canaries(Phase.RUNNING)] == ["new"]
        assert await store.get_canary("absent") is None
        assert await store.get_registration("absent") is None


class TestCodec:
    """JSON columns: numpy values, non-finite numbers, malformed rows."""

    def test_numpy_values_become_plain_json(self) -> None:
        """numpy scalars and arrays are written as plain numbers and lists."""
        text = dump_json({"p": np.float64(0.25), "n": np.int64(3), "xs": np.array([1.0, 2.5])})
        assert load_json(text) == {"p": 0.25, "n": 3, "xs": [1.0, 2.5]}

    def test_unstorable_value_is_rejected(self) -> None:
        """An object with no JSON form raises TypeError."""
        with pytest.raises(TypeError, match="object"):
            dump_json({"x": object()})

    async def test_results_with_numpy_and_nan_round_trip(self, store: SqliteStore) -> None:
        """A tick's results keep NaN and come back with numpy values as plain numbers."""
        canary = make_canary()
        await store.create_canary(canary, {})
        step = next_tick(canary, T0 + 60)
        tick = replace(step.tick, results={"p": np.float64(math.nan), "xs": np.arange(3)})
        await store.save_tick(step.canary, tick, None, None, expected_tick_seq=0)
        (stored,) = await store.list_ticks(canary.id)
        assert math.isnan(stored.results["p"])
        assert stored.results["xs"] == [0, 1, 2]

    async def test_malformed_row_is_a_store_error(self, store: SqliteStore, db_path: Path) -> None:
        """A row whose JSON or enum does not decode raises StoreError."""
        await store.create_canary(make_canary(), {})
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE canaries SET phase = 'sideways'")
        conn.close()
        with pytest.raises(StoreError, match="sideways"):
            await store.get_canary("c1")


class TestReopen:
    """Durability across close and reopen."""

    async def test_everything_survives_reopen(self, db_path: Path) -> None:
        """Canaries, configs, ticks, decisions and deliveries read back the same after reopening."""
        first = SqliteStore(str(db_path))
        await first.open()
        config = ConfigVersion(name="golden", hash="h", body={"metrics": []}, created_at=T0)
        await first.put_config(config)
        canary = await with_ticks(first, make_canary(), [None, Action.STEP, Action.ROLLBACK])
        saved = (
            await first.list_ticks("c1"),
            await first.list_decisions("c1"),
            await first.list_deliveries("c1"),
        )
        await first.close()
        second = SqliteStore(str(db_path))
        await second.open()
        assert await second.get_canary("c1") == canary
        assert await second.get_config("golden") == config
        assert saved == (
            await second.list_ticks("c1"),
            await second.list_decisions("c1"),
            await second.list_deliveries("c1"),
        )
        await second.close()
