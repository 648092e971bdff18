"""One tick of a canary, in the order of the flow: the scheduler finds what is due and fetches
its window (:mod:`.scheduler`), the judging step turns the window into results
(:mod:`.evaluation`), the lifecycle decides from them (:mod:`.lifecycle`, pure), and the fleet
acts and records the decision in one transaction (:mod:`.fleet`).
"""
