"""Metric sources: where a canary's baseline and canary series come from.

The protocol (:mod:`.protocol`), the window plumbing every source shares (:mod:`.window`), the
HTTP error seam (:mod:`.http`), the sources themselves (:mod:`.prometheus`, :mod:`.scrape`,
:mod:`.replay`) and PromQL text (:mod:`.promql`).
"""
