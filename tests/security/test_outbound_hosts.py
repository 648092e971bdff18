"""H2: the outbound URL policy parses hosts strictly — no '%' in names, zone ids only inside IPv6
literals — and compares names and literals in one canonical form; allow-lists take host,
host:port and CIDR entries."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from analyzer.errors import InvalidInput
from analyzer.net.policy import AllowList, check_url
from analyzer.sources.scrape import check_scrape_target
from analyzer.webhooks.policy import check_webhook_url


class TestPercentInHosts:
    """A '%' in a host name is refused, whatever follows it (H2)."""

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1%25.evil.test:18302/hook",
            "http://127.0.0.1%00.evil.test:18302/hook",
            "http://127.0.0.1%3a.evil.test:18302/hook",
            "http://127.0.0.1%2e:18302/hook",
            "http://127.0.0.1%25:18302/hook",
            "http://[::1%lo]:18302/hook",
            "http://[::1%25]:18302/hook",
            "http://[::1%25lo%2f]:18302/hook",
        ],
    )
    def test_refused(self, url: str) -> None:
        """With 127.0.0.1 and ::1 allowed, a '%' trick is refused on webhook.url."""
        with pytest.raises(InvalidInput) as caught:
            check_webhook_url(url, ["127.0.0.1", "::1"])
        assert caught.value.field == "webhook.url"

    def test_zone_id_in_an_ipv6_literal(self) -> None:
        """A zone id written %25<zone> inside brackets is IPv6 syntax: compared without it."""
        check_webhook_url("http://[::1%25lo]:18302/hook", ["::1"])


class TestCanonicalComparison:
    """Names and literals are compared in one form, entries and URLs alike."""

    @pytest.mark.parametrize(
        ("url", "entry"),
        [
            ("http://[::ffff:127.0.0.1]:9100/metrics", "127.0.0.1"),
            ("http://127.0.0.1:9100/metrics", "[::ffff:7f00:1]:9100"),
            ("http://[0:0::1]/metrics", "::1"),
            ("http://Pods.Example./metrics", "pods.example"),
            ("http://127.0.0.9:9100/metrics", "127.0.0.0/8"),
            ("http://[2001:db8::5]/metrics", "2001:db8::/32"),
        ],
    )
    def test_admitted(self, url: str, entry: str) -> None:
        """Spellings of an allowed host, and literals in an allowed CIDR, are admitted."""
        check_scrape_target(url, [entry])

    @pytest.mark.parametrize(
        ("url", "entries"),
        [
            ("http://127.0.0.1:9101/metrics", ["127.0.0.1:9100"]),
            ("http://10.0.0.1/metrics", ["127.0.0.0/8"]),
            ("http://pods.example/metrics", ["127.0.0.0/8"]),  # a CIDR admits addresses only
            ("http://2130706433/metrics", ["pods.example"]),
            ("http://169.254.169.254/latest/meta-data/", ["169.254.0.0/16"]),
            ("http://0.0.0.0:8080/api/v1/canaries", ["*"]),
            ("http://[::]:8080/", ["*"]),
        ],
    )
    def test_refused(self, url: str, entries: Collection[str]) -> None:
        """Other ports, other networks, names against CIDRs and internal hosts are refused."""
        with pytest.raises(InvalidInput) as caught:
            check_scrape_target(url, entries, field="canary.targets.0")
        assert caught.value.field == "canary.targets.0"

    def test_the_message_names_the_allow_list(self) -> None:
        """The refusal says which allow-list the host is missing from."""
        with pytest.raises(InvalidInput, match="not in the allowed scrape hosts"):
            check_url("http://a.example/", ["b.example"], field="targets", what="scrape")


class TestAllowListEntries:
    """AllowList.of: a bad entry names its setting."""

    @pytest.mark.parametrize(
        "entry",
        [
            "10.0.0.0/33",
            "host:0",
            "host:http",
            "[::1",
            "[::1]x",
            "a%25b",
            "[fe80::1%25eth0]",
            "a b",
        ],
    )
    def test_bad_entry(self, entry: str) -> None:
        """Malformed entries fail, naming the setting."""
        with pytest.raises(InvalidInput) as caught:
            AllowList.of([entry], setting="CANARYD_SCRAPE_ALLOWED_HOSTS")
        assert caught.value.field == "CANARYD_SCRAPE_ALLOWED_HOSTS"

    def test_comma_separated(self) -> None:
        """One comma-separated string reads as the list of its entries."""
        allowed = AllowList.of(" a.example:81, 10.0.0.0/8 ,*")
        assert allowed.hosts == frozenset({("a.example", 81)})
        assert allowed.anything
