"""Scrape targets at registration: only what CANARYD_SCRAPE_ALLOWED_HOSTS admits (finding H3).

Before, any URL was taken as a scrape target — link-local metadata addresses, other ports, the
daemon's own API. With the embedded scrape source, a registration whose target the allow-list
does not admit is a 422 naming the target's field, and nothing is registered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.api.policy import ApiPolicy
from support.apiserver import auth, error_of, registration, running_api

ALLOWED = ("127.0.0.1:9100", "10.20.0.0/16")


def scraped(baseline: str, canary: str) -> dict[str, object]:
    """A registration body whose sides name scrape targets."""
    body = registration()
    body["baseline"] = {**body["baseline"], "targets": [baseline]}
    body["canary"] = {**body["canary"], "targets": [canary]}
    return body


@pytest.mark.parametrize(
    ("baseline", "canary", "field"),
    [
        ("http://169.254.169.254/metrics", "http://127.0.0.1:9100/metrics", "baseline.targets.0"),
        ("http://127.0.0.1:9100/metrics", "http://127.0.0.1:8080/metrics", "canary.targets.0"),
        ("http://127.0.0.1:9100/metrics", "http://10.21.0.7:9100/metrics", "canary.targets.0"),
        ("http://127.0.0.1%25.evil.test:9100/m", "http://127.0.0.1:9100/m", "baseline.targets.0"),
    ],
    ids=["metadata-address", "other-port", "outside-the-cidr", "percent-in-host"],
)
async def test_a_target_outside_the_allow_list_is_refused(
    tmp_path: Path, baseline: str, canary: str, field: str
) -> None:
    """422 naming the side's target; nothing is registered."""
    policy = ApiPolicy(scrape_allowed_hosts=ALLOWED)
    async with running_api(str(tmp_path / "canaryd.db"), policy=policy) as api:
        api.ctx.scrape_mode = True
        response = await api.client.post(
            "/api/v1/canaries", json=scraped(baseline, canary), headers=auth()
        )
        error = await error_of(response, 422)
        assert error["field"] == field
        assert api.fleet.canaries == {}


async def test_allowed_targets_are_registered(tmp_path: Path) -> None:
    """Targets the allow-list admits (a host:port entry, a CIDR entry) register."""
    policy = ApiPolicy(scrape_allowed_hosts=ALLOWED)
    async with running_api(str(tmp_path / "canaryd.db"), policy=policy) as api:
        api.ctx.scrape_mode = True
        body = scraped("http://127.0.0.1:9100/metrics", "http://10.20.3.4:9100/metrics")
        response = await api.client.post("/api/v1/canaries", json=body, headers=auth())
        assert response.status == 201, await response.json()
