"""Canaries over the HTTP API: the list, one canary's history, the verdict, and the actions.

The API on loopback through aiohttp's TestClient, wired as Daemon.build wires it (the ``api``
fixture, :mod:`support.apiserver`): a real SQLite store, catalog and fleet, and a Scheduler that
the tests wake by hand."""

from __future__ import annotations

from typing import Any

import pytest

from support.apiserver import Api, auth, error_of
from support.fakes import T0


class TestCanaries:
    """Reading canaries: the list with its filter, one canary's history, the verdict."""

    async def test_list_and_filter_by_phase(self, api: Api) -> None:
        """All canaries newest first; ?phase= keeps one phase."""
        first = await api.register(name="first")
        await api.clock.advance(1)
        second = await api.register(name="second")
        paused = await api.client.post(f"/api/v1/canaries/{first['id']}/pause", headers=auth())
        assert paused.status == 200
        everything = await (await api.client.get("/api/v1/canaries", headers=auth())).json()
        assert [c["id"] for c in everything] == [second["id"], first["id"]]
        only = await (await api.client.get("/api/v1/canaries?phase=paused", headers=auth())).json()
        assert [c["id"] for c in only] == [first["id"]]
        warm = await (
            await api.client.get("/api/v1/canaries", params={"phase": "warmup"}, headers=auth())
        ).json()
        assert [c["id"] for c in warm] == [second["id"]]
        none = await (
            await api.client.get("/api/v1/canaries?phase=promoted", headers=auth())
        ).json()
        assert none == []

    async def test_bad_phase_filter_is_422(self, api: Api) -> None:
        """An unknown phase is refused, naming the parameter."""
        response = await api.client.get("/api/v1/canaries?phase=sleeping", headers=auth())
        error = await error_of(response, 422)
        assert error["field"] == "phase"
        assert "sleeping" in error["error"]

    async def test_one_canary_with_ticks_decisions_deliveries(self, api: Api) -> None:
        """GET one: the state plus every tick, decision and delivery."""
        created = await api.register()
        fresh = await (
            await api.client.get(f"/api/v1/canaries/{created['id']}", headers=auth())
        ).json()
        assert (fresh["ticks"], fresh["decisions"], fresh["deliveries"]) == ([], [], [])
        await api.wake()
        await api.clock.jump_to(T0 + 60)
        await api.wake()
        promoted = await api.client.post(
            f"/api/v1/canaries/{created['id']}/promote", json={"reason": "ship"}, headers=auth()
        )
        assert promoted.status == 200
        body = await (
            await api.client.get(f"/api/v1/canaries/{created['id']}", headers=auth())
        ).json()
        assert [t["seq"] for t in body["ticks"]] == [1, 2]
        assert body["ticks"][0]["reason"] == "analysis started"
        assert body["ticks"][1]["results"]["kill_switch"][0]["metric"] == "error_rate"
        assert [(d["seq"], d["action"], d["reason"]) for d in body["decisions"]] == [
            (1, "promote", "ship")
        ]
        assert body["decisions"][0]["delivery_id"] == f"{created['id']}:1"
        assert [(d["delivery_id"], d["event"], d["state"]) for d in body["deliveries"]] == [
            (f"{created['id']}:1", "promote", "pending")
        ]
        assert body["deliveries"][0]["url"] == "https://deploy.internal/hooks/canary"
        assert (body["phase"], body["weight"]) == ("promoted", 100)

    async def test_unknown_canary_is_404(self, api: Api) -> None:
        """GET, verdict and actions on an unknown id: 404."""
        for response in (
            await api.client.get("/api/v1/canaries/nope", headers=auth()),
            await api.client.get("/api/v1/canaries/nope/verdict", headers=auth()),
            await api.client.post("/api/v1/canaries/nope/abort", headers=auth()),
        ):
            await error_of(response, 404)

    async def _verdict(self, api: Api, canary_id: str) -> dict[str, Any]:
        response = await api.client.get(f"/api/v1/canaries/{canary_id}/verdict", headers=auth())
        assert response.status == 200
        return await response.json()

    async def test_verdict_mapping(self, api: Api) -> None:
        """warmup→running, paused→inconclusive, promoted→pass, rolled back→fail, aborted→none."""
        ids = {name: (await api.register(name=name))["id"] for name in ("w", "p", "a", "ok")}
        fire = (await api.register(name="fire", canary={"labels": {"deployment": "on-fire"}}))["id"]
        assert (await self._verdict(api, ids["w"]))["verdict"] == "running"
        await api.client.post(f"/api/v1/canaries/{ids['p']}/pause", headers=auth())
        await api.client.post(f"/api/v1/canaries/{ids['a']}/abort", headers=auth())
        await api.client.post(f"/api/v1/canaries/{ids['ok']}/promote", headers=auth())
        await api.wake()
        await api.clock.jump_to(T0 + 60)
        await api.wake()  # the kill-switch trips for the one on fire
        got = {name: await self._verdict(api, cid) for name, cid in {**ids, "fire": fire}.items()}
        assert {name: v["verdict"] for name, v in got.items()} == {
            "w": "running",
            "p": "inconclusive",
            "a": "none",
            "ok": "pass",
            "fire": "fail",
        }
        assert got["fire"]["phase"] == "rolled_back"
        assert got["fire"]["reason"].startswith("kill-switch: error_rate")
        assert got["w"]["phase"] == "running"


class TestActions:
    """POST abort / promote / pause / resume; 409 when the phase does not allow it."""

    async def test_pause_resume_abort(self, api: Api) -> None:
        """pause → paused, resume → back to warm-up, abort → aborted; each one decision."""
        cid = (await api.register())["id"]
        for action, phase in (("pause", "paused"), ("resume", "warmup"), ("abort", "aborted")):
            response = await api.client.post(f"/api/v1/canaries/{cid}/{action}", headers=auth())
            body = await response.json()
            assert response.status == 200, body
            assert body["phase"] == phase
        decisions = await api.store.list_decisions(cid)
        assert [d.action.value for d in decisions] == ["pause", "resume", "abort"]
        assert decisions[0].reason == "pause requested over the API"

    @pytest.mark.parametrize(
        ("setup", "action"),
        [
            ((), "resume"),
            (("pause",), "pause"),
            (("abort",), "abort"),
            (("abort",), "resume"),
            (("promote",), "abort"),
            (("promote",), "promote"),
        ],
    )
    async def test_conflict_is_409(self, api: Api, setup: tuple[str, ...], action: str) -> None:
        """An action that does not fit the canary's phase is a 409 naming both."""
        cid = (await api.register())["id"]
        for earlier in setup:
            assert (
                await api.client.post(f"/api/v1/canaries/{cid}/{earlier}", headers=auth())
            ).status == 200
        before = len(await api.store.list_decisions(cid))
        response = await api.client.post(f"/api/v1/canaries/{cid}/{action}", headers=auth())
        error = await error_of(response, 409)
        assert error["error"].startswith(f"cannot {action} a canary that is")
        assert len(await api.store.list_decisions(cid)) == before

    async def test_resume_a_running_canary_is_409(self, api: Api) -> None:
        """A running canary cannot be resumed."""
        cid = (await api.register())["id"]
        await api.wake()
        response = await api.client.post(f"/api/v1/canaries/{cid}/resume", headers=auth())
        error = await error_of(response, 409)
        assert error["error"] == "cannot resume a canary that is running"

    async def test_action_body_is_validated(self, api: Api) -> None:
        """Unknown keys in an action body are refused, naming them."""
        cid = (await api.register())["id"]
        response = await api.client.post(
            f"/api/v1/canaries/{cid}/abort", json={"why": "x"}, headers=auth()
        )
        error = await error_of(response, 422)
        assert error["field"] == "why"
