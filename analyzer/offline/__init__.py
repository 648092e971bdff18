"""Batch tools beside the daemon: recordings (:mod:`.recording`), backtests that replay them through
the daemon's lifecycle (:mod:`.backtest`), capture of a past window from Prometheus
(:mod:`.capture`) and Kayenta's remote-judge request as a command (:mod:`.remote_judge`).
"""
