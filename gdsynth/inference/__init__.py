"""Whole-volume inference: predictor callables, MC dropout, one-exam pipeline, cohort runner.

Modules: :mod:`.predictor` (``make_predictor``), :mod:`.mc` (``MCDropoutPredictor``),
:mod:`.slices` / :mod:`.sliding` / :mod:`.volume` (``predict_volume``), :mod:`.prep`
(``prepare_exam``, the one call into preprocessing), :mod:`.pipeline` (one exam),
:mod:`.outputs` (names, fingerprints, completion records), :mod:`.cohort` (``run_cohort``).
"""
