"""Modality attribution: how much each input sequence (T1w, T2w, FLAIR) drives the synthetic
enhancement of each detected lesion (see docs/architecture.md, "Attribution").

Modules: :mod:`~gdsynth.explain.attribution` (baseline, differentiable per-lesion forward,
drop-one-sequence ablation, captum integrated gradients), :mod:`~gdsynth.explain.exam` (all lesions
of one exam, attribution maps), :mod:`~gdsynth.explain.importance` (cohort sequence importance),
:mod:`~gdsynth.explain.folder` (``gdsynth explain`` over a prediction folder). Import from the
submodules; this package imports nothing heavy by itself.
"""
