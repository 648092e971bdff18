"""Judge configs by name and by content hash, kept in the store and cached in memory.

A canary pins the hash of the config it was registered with, so a later ``PUT`` of the same
name changes new canaries only; every version stays readable for explanations and replays.
A registration's inline config is kept by its hash alone and never becomes a name's current
version (:meth:`Catalog.put_inline`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from analyzer.clock import Clock
from analyzer.configs.judgeconfig import JudgeConfig, config_hash, load_config, parse_config
from analyzer.errors import InternalError, NotFound
from analyzer.store.protocol import ConfigVersion, Store

__all__ = ["Catalog"]

_SUFFIXES = (".yaml", ".yml", ".json")


def _read_dir(directory: Path) -> list[JudgeConfig]:
    if not directory.is_dir():
        return []
    paths = sorted(directory.iterdir())
    wanted = [p for p in paths if p.suffix in _SUFFIXES and not p.name.endswith(".schema.json")]
    return [load_config(path) for path in wanted]


class Catalog:
    """Named judge configs and every stored version."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._by_hash: dict[str, JudgeConfig] = {}

    async def load_dir(self, directory: Path) -> list[str]:
        """Store every ``*.yaml``/``*.yml``/``*.json`` config of a directory; names loaded.
        The files are read in a worker thread (start-up must not block the loop either)."""
        names = []
        for config in await asyncio.to_thread(_read_dir, directory):
            await self.put(config)
            names.append(config.name)
        return names

    async def put(self, config: JudgeConfig) -> ConfigVersion:
        """Store a config version and make it current for its name."""
        digest = config_hash(config)
        body = config.model_dump(mode="json", by_alias=True)
        now = self._clock.now()
        version = ConfigVersion(name=config.name, hash=digest, body=body, created_at=now)
        current = await self._store.get_config(config.name)
        if current is None or current.hash != digest:
            await self._store.put_config(version)
        self._by_hash[digest] = config
        return version

    async def put_inline(self, config: JudgeConfig) -> ConfigVersion:
        """Store a registration's inline config by content hash only: what its name means (the
        current version) is unchanged, only ``PUT /api/v1/configs/{name}`` changes that."""
        digest = config_hash(config)
        body = config.model_dump(mode="json", by_alias=True)
        version = ConfigVersion(
            name=config.name, hash=digest, body=body, created_at=self._clock.now()
        )
        await self._store.put_config_version(version)
        self._by_hash[digest] = config
        return version

    async def current(self, name: str) -> tuple[str, JudgeConfig]:
        """The current version of a named config: (hash, config)."""
        version = await self._store.get_config(name)
        if version is None:
            raise NotFound(f"no config named {name!r}")
        return version.hash, await self.by_hash(version.hash)

    async def by_hash(self, digest: str) -> JudgeConfig:
        """A config by content hash, from memory or the store."""
        cached = self._by_hash.get(digest)
        if cached is not None:
            return cached
        version = await self._store.get_config_version(digest)
        if version is None:
            raise NotFound(f"no config version {digest}")
        config = parse_config(version.body, source=f"stored config {digest[:12]}")
        self._by_hash[digest] = config
        return config

    def cached(self, digest: str) -> JudgeConfig:
        """A config already in memory (every live canary's is, once loaded); one that is not
        is a broken invariant (:class:`InternalError`), not the caller's bad input."""
        try:
            return self._by_hash[digest]
        except KeyError:
            msg = f"config version {digest[:12]} of a live canary is not loaded"
            raise InternalError(msg) from None

    async def list(self) -> list[ConfigVersion]:
        """Current version of every named config."""
        return await self._store.list_configs()
