"""Webhook delivery of decisions: where a webhook may go (:mod:`.policy`), the message — body,
signature, outbox row (:mod:`.message`) — and the outbox dispatcher that delivers it at least
once (:mod:`.dispatcher`).
"""
