"""Anytime-valid sequential judges: counts (:mod:`.count`), gauges (:mod:`.mean`), their shared
result (:mod:`.result`) and the e-Bonferroni split of α (:mod:`.ebonferroni`).
"""
