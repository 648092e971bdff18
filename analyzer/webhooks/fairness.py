"""Which due deliveries the dispatcher starts: a fair queue across canaries and destinations.

A destination is where an attempt connects (scheme, host and port of the webhook URL). Three
rules keep one slow receiver from delaying anybody else's decision:

- **per destination**: at most ``per_destination`` attempts in flight to one destination, so
  many canaries pointed at one hanging receiver hold only that many slots;
- **suspects last**: a destination whose last attempt timed out, was refused or answered 5xx is
  *suspect* until it answers again; due deliveries to healthy (or untried) destinations start
  first, and suspect destinations together hold at most half of the global slots — the other
  half stays free for receivers that answer;
- **one per canary, oldest first**: a canary's deliveries go one at a time in decision order
  (the store returns each canary's head only), older heads before newer ones.

So a delivery to an answering receiver waits at most for one attempt timeout of a hanging one
(the moment it becomes suspect), never for a queue of them.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from analyzer.model import Delivery

__all__ = ["Destinations", "destination_of"]

_REMEMBERED = 10_000
"""How many suspect destinations are remembered (the oldest are forgotten first)."""


def destination_of(url: str) -> str:
    """``scheme://host:port`` of a webhook URL (the default port filled in)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class Destinations:
    """In-flight attempts per destination, and which destinations are suspect."""

    def __init__(self, *, max_concurrency: int, per_destination: int) -> None:
        self.max_concurrency = max_concurrency
        self.per_destination = per_destination
        self._in_flight: Counter[str] = Counter()
        self._suspect: OrderedDict[str, None] = OrderedDict()

    def pick(self, due: Iterable[Delivery], busy_canaries: Sequence[str]) -> list[Delivery]:
        """The due deliveries to start now, in the order to start them (see the module)."""
        busy = set(busy_canaries)
        candidates = [d for d in due if d.canary_id not in busy]
        candidates.sort(key=lambda d: destination_of(d.url) in self._suspect)  # stable: age kept
        in_flight = Counter(self._in_flight)
        suspect_cap = max(1, self.max_concurrency // 2)
        suspect_now = sum(n for dest, n in in_flight.items() if dest in self._suspect)
        started: list[Delivery] = []
        for delivery in candidates:
            if sum(in_flight.values()) >= self.max_concurrency:
                break
            if delivery.canary_id in busy:
                continue
            dest = destination_of(delivery.url)
            if in_flight[dest] >= self.per_destination:
                continue
            if dest in self._suspect:
                if suspect_now >= suspect_cap:
                    continue
                suspect_now += 1
            in_flight[dest] += 1
            busy.add(delivery.canary_id)
            started.append(delivery)
        return started

    def started(self, delivery: Delivery) -> None:
        """An attempt to the delivery's destination is in flight."""
        self._in_flight[destination_of(delivery.url)] += 1

    def finished(self, delivery: Delivery, *, answered: bool) -> None:
        """The attempt ended; ``answered``: the receiver answered (2xx or a permanent 4xx), as
        opposed to a timeout, a refused connection or a 5xx."""
        dest = destination_of(delivery.url)
        self._in_flight[dest] -= 1
        if self._in_flight[dest] <= 0:
            del self._in_flight[dest]
        if answered:
            self._suspect.pop(dest, None)
        else:
            self._suspect[dest] = None
            self._suspect.move_to_end(dest)
            while len(self._suspect) > _REMEMBERED:
                self._suspect.popitem(last=False)

    def suspect(self, url: str) -> bool:
        """Whether the destination of ``url`` is suspect now."""
        return destination_of(url) in self._suspect

    @property
    def in_flight(self) -> int:
        """Attempts in flight, all destinations."""
        return sum(self._in_flight.values())
