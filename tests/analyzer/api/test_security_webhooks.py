"""Security of the running daemon: the webhook host allow-list, and link-local and cloud metadata
addresses that never pass.

The daemon is wired by ``Daemon.build`` from CANARYD_ settings on loopback (the ``start``
fixture, :mod:`support.secured`)."""

from __future__ import annotations

from collections import Counter

from support.fakes import auth, registration
from support.secured import ROOT, Daemonised, phases, register

REFUSED_WEBHOOKS = {
    "other-host": "https://evil.example/hooks/canary",
    "suffix": "https://deploy.internal.evil.example/hooks",
    "host-in-path": "https://evil.example/deploy.internal",
    "userinfo": "https://deploy.internal@evil.example/hooks",
    "userinfo-only": "https://user:pw@deploy.internal/hooks",
    "backslash": "https://deploy.internal\\@evil.example/",
    "whitespace": "https://deploy.internal /hooks",
    "scheme": "ftp://deploy.internal/hooks",
    "other-port": "http://127.0.0.1:1/hooks",
    "link-local": "http://169.254.10.1/hooks",
    "link-local-v6": "http://[fe80::1]/hooks",
    "link-local-v6-zone": "http://[fe80::1%25eth0]/hooks",
    "metadata-ip": "http://169.254.169.254/latest/meta-data/",
    "metadata-ip-mapped": "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "metadata-decimal": "http://2852039166/latest/meta-data/",
    "metadata-hex": "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/",
    "metadata-short": "http://169.254.43518/latest/meta-data/",
    "metadata-aws-v6": "http://[fd00:ec2::254]/latest/meta-data/",
    "metadata-gce": "http://metadata.google.internal/computeMetadata/v1/",
    "metadata-gce-dot": "http://metadata.google.internal./computeMetadata/v1/",
    "metadata-gce-upper": "http://METADATA.Google.Internal/computeMetadata/v1/",
}
ALWAYS_REFUSED = {k: v for k, v in REFUSED_WEBHOOKS.items() if k.startswith(("link", "metadata"))}


class TestWebhookHosts:
    """Webhook URLs are limited to CANARYD_WEBHOOK_ALLOWED_HOSTS; link-local and cloud metadata
    addresses never pass, even when the list allows every host."""

    async def test_refused_with_422_naming_webhook_url(self, start: Daemonised) -> None:
        """Every URL of the table is refused; nothing is registered."""
        async with start("deploy.internal,127.0.0.1:9,169.254.169.254") as daemon:
            for name, url in REFUSED_WEBHOOKS.items():
                response = await daemon.client.post(
                    "/api/v1/canaries", json=registration(webhook={"url": url}), headers=auth(ROOT)
                )
                body = await response.json()
                assert response.status == 422, (name, body)
                assert body["field"] == "webhook.url", (name, body)
            assert await phases(daemon) == Counter()

    async def test_wildcard_still_refuses_internal_addresses(self, start: Daemonised) -> None:
        """With ``*`` any public host is fine, but never link-local or metadata."""
        async with start("*") as daemon:
            for name, url in ALWAYS_REFUSED.items():
                response = await daemon.client.post(
                    "/api/v1/canaries", json=registration(webhook={"url": url}), headers=auth(ROOT)
                )
                body = await response.json()
                assert (response.status, body["field"]) == (422, "webhook.url"), (name, body)
            await register(daemon, webhook={"url": "https://hooks.example.org/canary"})

    async def test_allowed_hosts_register(self, start: Daemonised) -> None:
        """Hosts on the list (by name, or host:port) are accepted."""
        async with start("deploy.internal, 127.0.0.1:8443") as daemon:
            await register(daemon, webhook={"url": "https://deploy.internal/hooks"})
            await register(daemon, webhook={"url": "http://DEPLOY.internal.:8080/hooks"})
            await register(daemon, webhook={"url": "http://127.0.0.1:8443/hooks"})
            assert (await phases(daemon)).total() == 3
