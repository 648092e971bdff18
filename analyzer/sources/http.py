"""The HTTP error seam of the metric sources: aiohttp's exceptions become :class:`SourceError` here
and nowhere else (as httpx's ``map_httpcore_exceptions``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiohttp

from analyzer.errors import SourcePayloadError, SourceUnavailable

__all__ = ["map_client_errors"]


@contextlib.contextmanager
def map_client_errors(timeout_s: float) -> Iterator[None]:
    """Translate aiohttp's and the timeout's exceptions into :class:`SourceError`s.

    The one place in ``sources/`` where they are caught (as httpx's
    ``map_httpcore_exceptions``): a connection that fails or times out is
    :class:`SourceUnavailable`; a body that breaks off is :class:`SourcePayloadError`. The
    messages are fixed: they reach tick evidence, so they carry no addresses, OS error text or
    anything the other end sent.
    """
    try:
        yield
    except TimeoutError as exc:  # asyncio.timeout and aiohttp's ServerTimeoutError alike
        raise SourceUnavailable(f"timed out after {timeout_s:g}s") from exc
    except aiohttp.InvalidURL as exc:  # the outbound policy's refusal at request time, too
        raise SourceUnavailable("the URL was refused") from exc
    except aiohttp.ClientConnectorError as exc:  # refused, unreachable, DNS, policy: alike
        raise SourceUnavailable(f"connection failed ({exc.host}:{exc.port})") from exc
    except aiohttp.ClientPayloadError as exc:
        raise SourcePayloadError("the response body broke off") from exc
    except aiohttp.ClientResponseError as exc:
        raise SourcePayloadError(f"bad HTTP response ({exc.status})") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise SourceUnavailable(f"request failed ({type(exc).__name__})") from exc
