"""canaryd's judges: pure statistics on arrays (numpy and scipy only).

No I/O, logging, clock or global random state lives here; every function maps arrays and
keyword options to frozen results, so the daemon, backtests and tests share one behaviour.
"""
