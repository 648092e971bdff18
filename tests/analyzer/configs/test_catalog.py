"""analyzer.configs.catalog: named judge configs, every version kept by content hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import config_hash, load_config
from analyzer.errors import InternalError, InvalidInput, NotFound
from analyzer.store.sqlite import SqliteStore
from support.fakes import MakeConfig, SteppedClock
from support.paths import CONFIG_DIR


class TestVersions:
    """A put makes a version current; older versions stay readable by hash."""

    async def test_put_then_current(self, catalog: Catalog, make_config: MakeConfig) -> None:
        """The current version of a name is the last one put, with its content hash."""
        config = make_config()
        version = await catalog.put(config)
        digest, current = await catalog.current(config.name)
        assert (digest, current) == (version.hash, config)
        assert version.hash == config_hash(config)

    async def test_same_content_twice_is_one_version(
        self, catalog: Catalog, store: SqliteStore, make_config: MakeConfig, clock: SteppedClock
    ) -> None:
        """Putting identical content again keeps the stored version (and its time)."""
        first = await catalog.put(make_config())
        await clock.jump_to(clock.now() + 60)
        await catalog.put(make_config())
        stored = await store.get_config(first.name)
        assert stored is not None
        assert (stored.hash, stored.created_at) == (first.hash, first.created_at)

    async def test_a_new_version_leaves_the_old_one_readable(
        self, catalog: Catalog, make_config: MakeConfig
    ) -> None:
        """A canary pinned to the old hash still gets its config after a new version."""
        old = await catalog.put(make_config())
        new = await catalog.put(make_config(alpha=0.01))
        assert old.hash != new.hash
        assert (await catalog.current(old.name))[0] == new.hash
        assert (await catalog.by_hash(old.hash)).alpha == make_config().alpha

    async def test_by_hash_reads_the_store_after_a_restart(
        self, catalog: Catalog, store: SqliteStore, clock: SteppedClock, make_config: MakeConfig
    ) -> None:
        """A fresh catalog over the same store finds a version by hash."""
        version = await catalog.put(make_config())
        fresh = Catalog(store, clock)
        assert await fresh.by_hash(version.hash) == make_config()
        assert fresh.cached(version.hash) == make_config()


class TestMissing:
    """Unknown names and hashes are NotFound; an unloaded live config is a broken invariant."""

    async def test_unknown_name_and_hash(self, catalog: Catalog) -> None:
        """Neither a name nor a hash that was never stored is found."""
        with pytest.raises(NotFound, match="no config named 'nope'"):
            await catalog.current("nope")
        with pytest.raises(NotFound, match="no config version"):
            await catalog.by_hash("0" * 64)

    def test_cached_miss_is_internal_not_bad_input(self, catalog: Catalog) -> None:
        """A live canary's config missing from memory is canaryd's bug, not the caller's."""
        with pytest.raises(InternalError, match="not loaded") as caught:
            catalog.cached("f" * 64)
        assert not isinstance(caught.value, InvalidInput)


class TestLoadDir:
    """Start-up loads the shipped configs; the JSON Schema beside them is not a config."""

    async def test_loads_every_shipped_config(self, catalog: Catalog) -> None:
        """Each YAML of config/ is stored under its name; the schema file is skipped."""
        names = await catalog.load_dir(CONFIG_DIR)
        expected = {load_config(p).name for p in CONFIG_DIR.glob("*.yaml")}
        assert set(names) == expected
        assert len(names) == len(expected)

    async def test_json_and_yml_load_too(self, catalog: Catalog, tmp_path: Path) -> None:
        """A .json and a .yml config load like a .yaml; other files are ignored."""
        body = yaml.safe_load((CONFIG_DIR / "latency-only.yaml").read_text())
        (tmp_path / "a.json").write_text(json.dumps({**body, "name": "from-json"}))
        (tmp_path / "b.yml").write_text(yaml.safe_dump({**body, "name": "from-yml"}))
        (tmp_path / "notes.txt").write_text("not a config")
        shutil.copy(CONFIG_DIR / "judge-config.schema.json", tmp_path)
        assert sorted(await catalog.load_dir(tmp_path)) == ["from-json", "from-yml"]

    async def test_a_bad_file_names_itself(self, catalog: Catalog, tmp_path: Path) -> None:
        """A config with an unknown key stops the load with an error naming the key."""
        body = yaml.safe_load((CONFIG_DIR / "latency-only.yaml").read_text())
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**body, "lookBackMins": 5}))
        with pytest.raises(InvalidInput, match="lookBackMins"):
            await catalog.load_dir(tmp_path)

    async def test_missing_directory_loads_nothing(self, catalog: Catalog, tmp_path: Path) -> None:
        """No directory, no configs (and no error)."""
        assert await catalog.load_dir(tmp_path / "absent") == []
