"""H1: a registration's inline config never changes what a config name means; only
``PUT /api/v1/configs/{name}`` (scope ``config``) does, and inline configs can be refused."""

from __future__ import annotations

from pathlib import Path

from analyzer.api.policy import ApiPolicy
from analyzer.configs.judgeconfig import config_hash, parse_config
from support.apiserver import auth, error_of, registration, running_api
from support.configs import config_body

REGISTER = "reg-51aa"


def _inline(**changes: object) -> dict[str, object]:
    body = registration(config_inline=config_body(**changes))
    del body["config"]
    return body


class TestInlineConfigs:
    """Inline configs are kept by content hash only."""

    async def test_inline_body_named_like_a_config_does_not_replace_it(
        self, tmp_path: Path
    ) -> None:
        """A register-only token's inline config named test-golden (one that never fails)
        leaves test-golden as it was, for reads and for registrations by name."""
        original = config_hash(parse_config(config_body()))
        never_fails = {"pass": 0, "marginal": 0}
        async with running_api(str(tmp_path / "db")) as api:
            inline = await api.client.post(
                "/api/v1/canaries",
                json=_inline(score_thresholds=never_fails),
                headers=auth(REGISTER),
            )
            created = await inline.json()
            assert inline.status == 201, created
            assert created["config_hash"] != original
            assert created["config"] == "inline:test-golden"
            named = await (
                await api.client.get("/api/v1/configs/test-golden", headers=auth())
            ).json()
            assert named["hash"] == original
            listed = await (await api.client.get("/api/v1/configs", headers=auth())).json()
            assert [c["hash"] for c in listed] == [original]
            by_name = await api.register()
            assert by_name["config_hash"] == original

    async def test_inline_configs_can_be_refused(self, tmp_path: Path) -> None:
        """With inline configs refused (CANARYD_ALLOW_INLINE_CONFIGS=false): 422 naming
        config_inline, nothing stored; registrations by name go on."""
        policy = ApiPolicy(allow_inline_configs=False)
        async with running_api(str(tmp_path / "db"), policy=policy) as api:
            response = await api.client.post(
                "/api/v1/canaries", json=_inline(warmup="30s"), headers=auth()
            )
            error = await error_of(response, 422)
            assert error["field"] == "config_inline"
            assert await api.store.list_canaries() == []
            await api.register()
