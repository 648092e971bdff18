"""L4: ``POST /api/v1/canaries`` with an ``Idempotency-Key`` registers once: a retry with the same
body answers 200 and that canary as it is now, another body 409; the key is stored with the
canary, so a retry after a restart finds it too. Keys are global, not per token."""

from __future__ import annotations

from pathlib import Path

from support.apiserver import auth, error_of, registration, running_api
from support.fakes import T0

KEY = {"Idempotency-Key": "deploy-8812/checkout"}


class TestIdempotentRegistration:
    """Registering with an Idempotency-Key."""

    async def test_retry_returns_the_same_canary_across_a_restart(self, tmp_path: Path) -> None:
        """201, then 200 with the same id and its current state (after a tick and a restart,
        from another token); one canary in all."""
        db = str(tmp_path / "db")
        body = registration()
        async with running_api(db) as api:
            first = await api.client.post("/api/v1/canaries", json=body, headers=auth() | KEY)
            created = await first.json()
            assert first.status == 201, created
            await api.clock.jump_to(T0)
            await api.wake()
        async with running_api(db) as restarted:
            again = await restarted.client.post(
                "/api/v1/canaries", json=body, headers=auth("reg-51aa") | KEY
            )
            repeated = await again.json()
            listed = await (await restarted.client.get("/api/v1/canaries", headers=auth())).json()
        assert again.status == 200, repeated
        assert repeated["id"] == created["id"]
        assert repeated["tick_seq"] == 1
        assert [c["id"] for c in listed] == [created["id"]]

    async def test_another_body_with_the_key_is_409(self, tmp_path: Path) -> None:
        """The key again with a different body: 409, nothing created."""
        async with running_api(str(tmp_path / "db")) as api:
            first = await api.client.post(
                "/api/v1/canaries", json=registration(), headers=auth() | KEY
            )
            assert first.status == 201
            other = registration(name="checkout-2.3.2")
            response = await api.client.post("/api/v1/canaries", json=other, headers=auth() | KEY)
            await error_of(response, 409)
            assert len(await api.store.list_canaries()) == 1

    async def test_a_malformed_key_is_422(self, tmp_path: Path) -> None:
        """An empty, overlong or non-ASCII key: 422 naming Idempotency-Key."""
        async with running_api(str(tmp_path / "db")) as api:
            for key in ("", "k" * 256, "clé"):
                response = await api.client.post(
                    "/api/v1/canaries",
                    json=registration(),
                    headers=auth() | {"Idempotency-Key": key},
                )
                assert (await error_of(response, 422))["field"] == "Idempotency-Key"
            assert await api.store.list_canaries() == []
