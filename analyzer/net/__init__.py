"""Outbound calls: the one URL policy for every URL the daemon calls (:mod:`.policy`) and the
session whose resolver and request hook enforce it on what is actually connected to
(:mod:`.connector`). Webhooks and the scrape source use both; an operator's own Prometheus
does not go through an allow-list.
"""
