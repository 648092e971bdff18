"""Security of the running daemon: logs free of tokens, the webhook secret and signatures.

The daemon is wired by ``Daemon.build`` from CANARYD_ settings on loopback (the ``start``
fixture, :mod:`support.secured`)."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from analyzer.webhooks.message import sign
from support.fakes import auth, registration
from support.inprocess import eventually
from support.loopback import WEBHOOK_SECRET, Reply, WebhookReceiver
from support.secured import ACT, EVERY_TOKEN, REGISTER, ROOT, Daemonised, register


@pytest.mark.usefixtures("default_logging")
class TestSecretsStayOutOfLogs:
    """Neither API tokens nor the webhook secret (nor signatures made with it) are logged."""

    async def test_no_token_or_secret_in_any_event(
        self, start: Daemonised, webhook_receiver: WebhookReceiver
    ) -> None:
        """Settings load, start-up, registrations with tokens (good and bad), an action, a
        signed delivery and a refused one whose receiver echoes the secret: no event holds a
        token, the secret or a signature."""
        # a misconfigured deploy system: refuses (400), echoing the signature and the secret
        echoing = Reply(
            status=400,
            text=lambda a: f"bad signature {a.signature}; expected key {WEBHOOK_SECRET}",
        )
        async with WebhookReceiver(reply=echoing) as echo:
            allowed = f"deploy.internal,{webhook_receiver.host},{echo.host}"
            with capture_logs() as events:
                async with start(allowed) as daemon:
                    good = await register(
                        daemon, REGISTER, webhook={"url": webhook_receiver.url}, name="delivered"
                    )
                    echoed = await register(
                        daemon, ROOT, webhook={"url": echo.url_for("/hooks/echo")}
                    )
                    wrong = await daemon.client.post(
                        "/api/v1/canaries", json=registration(), headers=auth(ROOT + "x")
                    )
                    assert wrong.status == 401
                    for canary in (good, echoed):
                        response = await daemon.client.post(
                            f"/api/v1/canaries/{canary['id']}/promote", headers=auth(ACT)
                        )
                        assert response.status == 200

                    async def both_sent() -> bool:
                        await daemon.clock.advance(1.0)
                        return bool(webhook_receiver.attempts) and bool(echo.attempts)

                    await eventually(both_sent, what="both deliveries attempted")

                    async def both_settled() -> bool:
                        listed = await (
                            await daemon.client.get("/api/v1/canaries", headers=daemon.reads)
                        ).json()
                        states = set()
                        for canary in listed:
                            one = await daemon.client.get(
                                f"/api/v1/canaries/{canary['id']}", headers=daemon.reads
                            )
                            states |= {d["state"] for d in (await one.json())["deliveries"]}
                        return states == {"delivered", "failed"}

                    await eventually(both_settled, what="one delivered, one failed")
        assert webhook_receiver.attempts[0].signed
        names = {e["event"] for e in events}
        assert {"daemon.started", "canary.registered", "decision.made"} <= names
        assert {"webhook.delivered", "webhook.failed"} <= names
        failed = next(e for e in events if e["event"] == "webhook.failed")
        assert failed["err"].startswith("HTTP 400: bad signature sha256=[redacted]")
        signatures = [
            *(a.signature for a in echo.attempts),
            sign(webhook_receiver.attempts[0].body, WEBHOOK_SECRET),
        ]
        hexes = [s.removeprefix("sha256=") for s in signatures]
        text = repr(events)
        for secret in (*EVERY_TOKEN, WEBHOOK_SECRET, *hexes):
            assert secret not in text, secret
