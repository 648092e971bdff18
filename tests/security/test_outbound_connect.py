"""The outbound session checks what it actually connects to: every request's URL, and every
address a name resolves to (a fake resolver plays the DNS-swap attacker; no real DNS); it never
follows a redirect."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import pytest

from analyzer.net.connector import outbound_session
from analyzer.net.policy import AllowList
from support.outbound import SECRET_PATH, FakeResolver, HostileTarget

TIMEOUT = aiohttp.ClientTimeout(total=5.0)


def session(entries: Sequence[str], resolver: FakeResolver) -> aiohttp.ClientSession:
    """A policy session over ``entries`` resolving with ``resolver``."""
    return outbound_session(
        AllowList.of(entries), what="scrape", timeout=TIMEOUT, resolver=resolver
    )


class TestResolvedAddresses:
    """A DNS answer cannot swap an allowed name for a forbidden address."""

    @pytest.mark.parametrize("forbidden", ["127.0.0.1", "169.254.169.254", "0.0.0.0", "::1"])
    async def test_swapped_answer_refused(self, target: HostileTarget, forbidden: str) -> None:
        """An allowed name answering loopback, metadata or unspecified is not connected to."""
        resolver = FakeResolver({"pods.example": [forbidden]})
        port = target.port
        async with session(["pods.example"], resolver) as client:
            with pytest.raises(aiohttp.ClientConnectorError):
                await client.get(f"http://pods.example:{port}/metrics")
        assert resolver.asked == ["pods.example"]
        assert target.hits == {}

    async def test_only_allowed_answers_are_used(self, target: HostileTarget) -> None:
        """Of a mixed answer only the addresses the allow-list admits are connected to."""
        resolver = FakeResolver({"pods.example": ["169.254.169.254", "127.0.0.1"]})
        port = target.port
        async with (
            session(["pods.example", f"127.0.0.1:{port}"], resolver) as client,
            client.get(f"http://pods.example:{port}/metrics") as response,
        ):
            assert response.status == 200
        assert target.hits == {"/metrics": 1}

    async def test_localhost_may_be_loopback(self, target: HostileTarget) -> None:
        """An allowed ``localhost`` name reaches loopback (it is loopback by definition)."""
        resolver = FakeResolver({"localhost": ["127.0.0.1"]})
        port = target.port
        async with (
            session(["localhost"], resolver) as client,
            client.get(f"http://localhost:{port}/metrics") as response,
        ):
            assert response.status == 200

    async def test_name_not_allowed_is_not_resolved(self, target: HostileTarget) -> None:
        """A name outside the allow-list is refused before any lookup."""
        resolver = FakeResolver({"evil.example": ["127.0.0.1"]})
        async with session(["pods.example"], resolver) as client:
            with pytest.raises(aiohttp.InvalidURL):
                await client.get("http://evil.example/metrics")
        assert resolver.asked == []


class TestRequestedUrls:
    """Every request's URL is checked, literals included (they reach no resolver)."""

    async def test_percent_trick_refused(self, target: HostileTarget) -> None:
        """``127.0.0.1%25.evil.test`` with 127.0.0.1 allowed is never looked up or sent (H2)."""
        port = target.port
        resolver = FakeResolver({"127.0.0.1%.evil.test": ["127.0.0.1"]})
        async with session(["127.0.0.1"], resolver) as client:
            with pytest.raises(aiohttp.InvalidURL):
                await client.get(f"http://127.0.0.1%25.evil.test:{port}/metrics")
        assert (resolver.asked, target.hits) == ([], {})

    async def test_literal_outside_the_list(self, target: HostileTarget) -> None:
        """A literal address the allow-list does not admit is refused before connecting."""
        async with session(["10.0.0.0/8"], FakeResolver({})) as client:
            with pytest.raises(aiohttp.InvalidURL):
                await client.get(target.at("/metrics"))
        assert target.hits == {}


class TestRedirects:
    """Redirects are never followed, even by a caller that forgets allow_redirects=False."""

    async def test_redirect_fails(self, target: HostileTarget) -> None:
        """A 302 fails the request; its Location is never requested."""
        port = target.port
        async with session([f"127.0.0.1:{port}"], FakeResolver({})) as client:
            with pytest.raises(aiohttp.ClientResponseError, match="redirects are not followed"):
                await client.get(target.at("/redirect"))
        assert target.hits == {"/redirect": 1}
        assert SECRET_PATH not in target.hits
