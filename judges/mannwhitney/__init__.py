"""Kayenta's Mann-Whitney test: the rank-sum test with its exact interval (:mod:`.ranksum`), the
order statistics of the pairwise differences by exact merge counts (:mod:`.orderstats`,
:mod:`.bracketing`, :mod:`.merges`) and the band tests behind the interval (:mod:`.band`).
"""
