"""Shared test support: fakes, loopback servers and receivers, ports, judge configs, processes,
and reference data (Kayenta's and R's)."""
