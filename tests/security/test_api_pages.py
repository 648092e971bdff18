"""M2: bounded answers. The canary list is paged (``limit``, opaque ``cursor``, a ``Link``
header to the next page) and its items carry no metadata; one canary shows its newest ticks and
links to the rest, which ``/ticks?after=SEQ&limit=N`` pages through: nothing silently dropped."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from support.apiserver import Api, auth, error_of, running_api
from support.fakes import T0

LONG_STAGES = [{"weight": 50, "duration": "7d"}, {"weight": 100, "duration": "0s"}]
_NEXT = re.compile(r'^<([^>]+)>; rel="next"$')


async def _pages(api: Api, url: str) -> list[list[dict[str, Any]]]:
    pages = []
    next_url: str | None = url
    while next_url is not None:
        response = await api.client.get(next_url, headers=auth())
        pages.append(await response.json())
        assert response.status == 200, pages[-1]
        link = response.headers.get("Link")
        next_url = None if link is None else _NEXT.fullmatch(link).group(1)  # type: ignore[union-attr]
    return pages


class TestCanaryList:
    """GET /api/v1/canaries."""

    async def test_pages_cover_every_canary_once_without_metadata(self, tmp_path: Path) -> None:
        """Five canaries at limit=2: pages of 2, 2 and 1 linked by Link headers, newest first,
        each canary once, no item with metadata (the single canary has it)."""
        async with running_api(str(tmp_path / "db")) as api:
            ids = [(await api.register(name=f"c{i}"))["id"] for i in range(5)]
            pages = await _pages(api, "/api/v1/canaries?limit=2")
            one = await (await api.client.get(f"/api/v1/canaries/{ids[0]}", headers=auth())).json()
        assert [len(page) for page in pages] == [2, 2, 1]
        listed = [c["id"] for page in pages for c in page]
        assert listed == ids[::-1]
        assert all("metadata" not in c for page in pages for c in page)
        assert one["metadata"]["commit"] == "abc123"

    async def test_limit_and_cursor_are_checked(self, tmp_path: Path) -> None:
        """limit outside 1..1000 and a cursor the API did not give out: 422 naming them."""
        async with running_api(str(tmp_path / "db")) as api:
            for query, field in (
                ("limit=0", "limit"),
                ("limit=1001", "limit"),
                ("cursor=x", "cursor"),
            ):
                response = await api.client.get(f"/api/v1/canaries?{query}", headers=auth())
                assert (await error_of(response, 422))["field"] == field


class TestTicks:
    """A canary's ticks."""

    async def test_newest_ticks_shown_and_every_tick_reachable(self, tmp_path: Path) -> None:
        """After 55 ticks the canary shows the newest 50 and links to the rest; paging
        /ticks 20 at a time from the link yields ticks 1..55, each once, then next is null."""
        async with running_api(str(tmp_path / "db")) as api:
            created = await api.register(stages=LONG_STAGES)
            for i in range(55):
                await api.clock.jump_to(T0 + 60 * i)
                await api.wake()
            url = f"/api/v1/canaries/{created['id']}"
            one = await (await api.client.get(url, headers=auth())).json()
            seqs: list[int] = []
            next_url: str | None = one["ticks_next"].replace("limit=100", "limit=20")
            while next_url is not None:
                page = await (await api.client.get(next_url, headers=auth())).json()
                seqs += [t["seq"] for t in page["ticks"]]
                next_url = page["next"]
        assert [t["seq"] for t in one["ticks"]] == list(range(6, 56))
        assert seqs == list(range(1, 56))
