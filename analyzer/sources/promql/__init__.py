"""PromQL text: query templates rendered for one side (:mod:`.render`) and the parser of the small
subset the scrape source evaluates itself (:mod:`.parse`).
"""
