"""The store: canaries, config versions, ticks, decisions and the webhook outbox — the protocol
(:mod:`.protocol`) and its SQLite implementation (:mod:`.sqlite`, :mod:`.sqlite_thread`,
:mod:`.codec`, :mod:`.migrations`).
"""
