"""M4: reads of canaries, configs and verdicts need a token when tokens are configured (any
scope implies ``read``; ``CANARYD_PUBLIC_READS`` opts out); health, metrics and the document stay
open; answers show webhook URLs without secrets and delivery errors without receivers' bodies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from analyzer.api.policy import ApiPolicy
from analyzer.settings import load_settings
from support.apiserver import Api, auth, running_api
from support.fakes import T0

READS = [
    "/api/v1/canaries",
    "/api/v1/canaries/{id}",
    "/api/v1/canaries/{id}/ticks",
    "/api/v1/canaries/{id}/verdict",
    "/api/v1/configs",
    "/api/v1/configs/test-golden",
]
OPEN = ["/healthz", "/readyz", "/metrics", "/openapi.json"]
SCOPED_TOKENS = ["read-c4e7", "reg-51aa", "act-2b9c", "cfg-90de"]


async def _statuses(api: Api, paths: list[str], headers: dict[str, str]) -> set[int]:
    created = await api.register()
    urls = [path.format(id=created["id"]) for path in paths]
    return {(await api.client.get(url, headers=headers)).status for url in urls}


class TestReads:
    """Who may read."""

    async def test_reads_need_a_token(self, tmp_path: Path) -> None:
        """Without a token every read is 401; health, metrics and the document are open."""
        async with running_api(str(tmp_path / "db")) as api:
            assert await _statuses(api, READS, {}) == {401}
            assert await _statuses(api, OPEN, {}) == {200}

    @pytest.mark.parametrize("token", SCOPED_TOKENS)
    async def test_every_scope_implies_read(self, tmp_path: Path, token: str) -> None:
        """A read-only token, and each scope that can change something, may read."""
        async with running_api(str(tmp_path / "db")) as api:
            assert await _statuses(api, READS, auth(token)) == {200}

    async def test_public_reads_opt_out(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """CANARYD_PUBLIC_READS=true: reads without a token; changes still need one."""
        monkeypatch.setenv("CANARYD_PUBLIC_READS", "true")
        policy = ApiPolicy.of(load_settings())
        async with running_api(str(tmp_path / "db"), policy=policy) as api:
            assert await _statuses(api, READS, {}) == {200}
            refused = await api.client.post("/api/v1/canaries", json={}, headers={})
            assert refused.status == 401


class TestRedaction:
    """What an answer shows of a webhook delivery."""

    async def test_webhook_url_and_receiver_body_are_not_shown(self, tmp_path: Path) -> None:
        """A delivery's URL loses its query (userinfo too; registration refuses it anyway) and
        its stored error (with the receiver's excerpt) is the status alone."""
        async with running_api(str(tmp_path / "db")) as api:
            created = await api.register(
                canary={"labels": {"deployment": "on-fire"}},
                webhook={"url": "https://deploy.internal/hooks/x?token=s3cret-q"},
            )
            for at in (T0, T0 + 60):
                await api.clock.jump_to(at)
                await api.wake()
            [delivery] = await api.store.list_deliveries(created["id"])
            echoed = "HTTP 500: internal error, token=s3cret-body at 10.0.0.7"
            await api.store.update_delivery(dataclasses.replace(delivery, last_error=echoed))
            response = await api.client.get(f"/api/v1/canaries/{created['id']}", headers=auth())
            text = await response.text()
            [shown] = (await response.json())["deliveries"]
        assert "s3cret" not in text
        assert "10.0.0.7" not in text
        assert shown["url"] == "https://deploy.internal/hooks/x?redacted"
        assert shown["last_error"] == "HTTP 500"
