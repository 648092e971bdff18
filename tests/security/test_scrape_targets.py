"""H3: a registration's scrape targets must match CANARYD_SCRAPE_ALLOWED_HOSTS; a refusal
names the target's field."""

from __future__ import annotations

import pytest

from analyzer.errors import InvalidInput
from analyzer.settings import Settings
from analyzer.sources.scrape import check_side_targets

ALLOWED = ["127.0.0.1:9100", "10.0.0.0/8"]


class TestSideTargets:
    """check_side_targets: every target of a side, the bad one named by index."""

    def test_allowed(self) -> None:
        """Targets the allow-list admits pass."""
        check_side_targets(
            ["http://127.0.0.1:9100/metrics", "http://10.2.3.4:8080/metrics"],
            ALLOWED,
            side="canary",
        )

    @pytest.mark.parametrize(
        "target",
        [
            "http://169.254.169.254/latest/meta-data/",  # cloud metadata
            "http://127.0.0.1:8080/api/v1/canaries",  # the daemon's own API, another port
            "http://[::ffff:a9fe:a9fe]/",  # metadata, IPv4-mapped
            "http://internal.example:9100/metrics",  # a name not in the list
            "file:///etc/passwd",
        ],
    )
    def test_refused(self, target: str) -> None:
        """Any other target is refused, naming ``<side>.targets.<i>``."""
        with pytest.raises(InvalidInput) as caught:
            check_side_targets(["http://127.0.0.1:9100/metrics", target], ALLOWED, side="baseline")
        assert caught.value.field == "baseline.targets.1"

    def test_setting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """CANARYD_SCRAPE_ALLOWED_HOSTS is a comma-separated list, empty by default."""
        monkeypatch.delenv("CANARYD_SCRAPE_ALLOWED_HOSTS", raising=False)
        assert Settings().scrape_allowed_hosts == []
        assert Settings(scrape_allowed_hosts="a:1, 10.0.0.0/8").scrape_allowed_hosts == [
            "a:1",
            "10.0.0.0/8",
        ]
