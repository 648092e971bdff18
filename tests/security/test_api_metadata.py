"""M6: a live canary's metadata is kept in the store, not in the fleet's memory (bounded at
registration by CANARYD_MAX_METADATA_BYTES): memory per canary does not grow with it, and
nothing that records a tick wipes it."""

from __future__ import annotations

from pathlib import Path

from support.apiserver import auth, running_api
from support.fakes import T0

METADATA = {"commit": "abc123", "notes": "n" * 15_000}


class TestMetadataInMemory:
    """Where a canary's metadata lives."""

    async def test_live_canaries_hold_no_metadata(self, tmp_path: Path) -> None:
        """Registered, ticked and resumed after a restart: the fleet's copy has no metadata,
        the canary's answer has all of it."""
        db = str(tmp_path / "db")
        async with running_api(db) as api:
            created = await api.register(metadata=METADATA)
            for at in (T0, T0 + 60):
                await api.clock.jump_to(at)
                await api.wake()
            assert api.fleet.canaries[created["id"]].metadata == {}
        async with running_api(db) as restarted:
            assert restarted.fleet.canaries[created["id"]].metadata == {}
            url = f"/api/v1/canaries/{created['id']}"
            one = await (await restarted.client.get(url, headers=auth())).json()
        assert one["tick_seq"] == 2
        assert one["metadata"] == METADATA
