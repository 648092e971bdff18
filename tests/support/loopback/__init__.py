"""Everything a test serves or calls on 127.0.0.1, written once.

- :mod:`~support.loopback.ports`: ports from sockets bound to port 0 (never a number that was
  free a moment ago), a URL where connections are refused, and the interim retry for a
  subprocess that must be told its port.
- :mod:`~support.loopback.servers`: one way to serve an aiohttp app (and a client of it).
- :mod:`~support.loopback.receiver`: the one recording webhook receiver.
"""

from support.loopback.ports import HOST, PortTaken, bind, on_fresh_port, port_of, refused_url
from support.loopback.receiver import HOOK_PATH, WEBHOOK_SECRET, Attempt, Reply, WebhookReceiver
from support.loopback.servers import Client, client, server, serving

__all__ = [
    "HOOK_PATH",
    "HOST",
    "WEBHOOK_SECRET",
    "Attempt",
    "Client",
    "PortTaken",
    "Reply",
    "WebhookReceiver",
    "bind",
    "client",
    "on_fresh_port",
    "port_of",
    "refused_url",
    "server",
    "serving",
]
