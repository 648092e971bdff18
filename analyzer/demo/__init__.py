"""``canaryd demo``: simulated deployments (:mod:`.simulator`) and the self-contained run
(:mod:`.run`).
"""
