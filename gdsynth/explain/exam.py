"""Attribution of every detected lesion of one exam, on the prepared grid, and its outputs.

:func:`explain_volume` works on plain arrays (pure apart from running the generator);
:func:`explain_detection` takes a :class:`gdsynth.inference.prep.PreparedExam`;
:func:`write_attribution_maps` writes one ``_desc-attribution<Seq>_T1w`` per input sequence on the
input T1w grid (integrated-gradients voxel attributions, summed over lesions and context slices,
in units of enhancement × voxels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from gdsynth.explain.attribution import (
    Method,
    ablation,
    baseline_volume,
    integrated_gradients,
    make_forward,
    shares,
    slab_of,
)


@dataclass
class Explanation:
    """``columns``: label → lesion-table columns (``attr_ablation_<Seq>``, ``attr_ig_<Seq>``,
    ``attr_lrp_<Seq>`` shares, ``ablation_delta_<Seq>`` change of mean enhancement in normalized
    units); ``maps``: sequence → (X, Y, Z) float32 IG attribution map on the prepared grid;
    ``relevance``: the same for LRP (signed: > 0 evidence for enhancement, < 0 against);
    ``conservation``: label → Σ LRP relevance / explained enhancement."""

    sequences: list[str]
    columns: dict[int, dict[str, float]] = field(default_factory=dict)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    ig_delta: dict[int, float] = field(default_factory=dict)
    relevance: dict[str, np.ndarray] = field(default_factory=dict)
    conservation: dict[int, float] = field(default_factory=dict)

    def annotate(self, lesions: Sequence[dict[str, Any]]) -> None:
        """Add the columns to lesion dicts (matched by ``label``), in place."""
        for les in lesions:
            les.update(self.columns.get(int(les["label"]), {}))


def lesion_columns(sequences: Sequence[str], method: Method, values: Sequence[float]
                   ) -> dict[str, float]:
    """``attr_<method>_<Seq>`` shares of ``values`` (one per sequence)."""
    return {f"attr_{method.value}_{s}": float(v)
            for s, v in zip(sequences, shares(values), strict=True)}


def explain_volume(
    generator: nn.Module, volume: np.ndarray, brain: np.ndarray, labels: np.ndarray,
    label_ids: Sequence[int], *, sequences: Sequence[str], mode: str, context: int = 0,
    residual: bool = True, methods: Sequence[Method | str] = (Method.ablation, Method.ig),
    n_steps: int = 16, margin: int = 8, max_items: int = 32, lrp_epsilon: float | None = None,
) -> Explanation:
    """Explain each lesion ``labels == id`` (X, Y, Z) of a prepared ``volume`` (S, X, Y, Z).

    ``max_items`` caps the slices (2D/2.5D; 3D: boxes) of one IG forward (memory)."""
    from gdsynth.inference.predictor import module_device

    methods = [Method(m) for m in methods]
    seqs = list(sequences)
    t1w = seqs.index("T1w") if "T1w" in seqs else 0
    base_vol = baseline_volume(volume, brain)
    device = module_device(generator)
    was_training = generator.training
    generator.eval()
    result = Explanation(seqs)
    maps = np.zeros(volume.shape, np.float32) if Method.ig in methods else None
    rel_maps = np.zeros(volume.shape, np.float32) if Method.lrp in methods else None
    try:
        for label in label_ids:
            mask = labels == label
            if not mask.any():
                continue
            fwd, region = make_forward(generator, mask, mode=mode, context=context,
                                       residual=residual, t1w_index=t1w, margin=margin)
            fwd = fwd.to(device)
            slab, base = slab_of(volume, region).to(device), slab_of(base_vol, region).to(device)
            cols: dict[str, float] = {}
            if Method.ablation in methods:
                deltas = ablation(fwd, slab, base)
                cols.update(lesion_columns(seqs, Method.ablation, deltas))
                cols.update({f"ablation_delta_{s}": d for s, d in zip(seqs, deltas, strict=True)})
            if Method.ig in methods:
                per = 1 if fwd.three_d else region.z_out.stop - region.z_out.start
                sums, attr, delta = integrated_gradients(
                    fwd, slab, base, n_steps=n_steps, internal_batch_size=max(1, max_items // per))
                cols.update(lesion_columns(seqs, Method.ig, sums))
                result.ig_delta[int(label)] = delta
                add_slab(maps, region, attr.cpu().numpy())
            if Method.lrp in methods:
                from gdsynth.explain.lrp import DEFAULT_EPSILON, lrp

                rel = lrp(fwd, slab, epsilon=DEFAULT_EPSILON if lrp_epsilon is None else lrp_epsilon)
                cols.update(lesion_columns(seqs, Method.lrp, rel.relevance.flatten(1).sum(1).tolist()))
                result.conservation[int(label)] = rel.conservation
                add_slab(rel_maps, region, rel.relevance.cpu().numpy())
            result.columns[int(label)] = cols
    finally:
        generator.train(was_training)
    if maps is not None:
        result.maps = {s: maps[i] for i, s in enumerate(seqs)}
    if rel_maps is not None:
        result.relevance = {s: rel_maps[i] for i, s in enumerate(seqs)}
    return result


def add_slab(volume_maps: np.ndarray, region, part: np.ndarray) -> None:
    """Add a slab's voxel values ``(S, x, y, Zin)`` into ``volume_maps`` (S, X, Y, Z), in place
    (context slices clamped at the volume edges add up)."""
    target = volume_maps[:, region.x, region.y]  # a view: z_in may repeat (edge clamping)
    for j, z in enumerate(region.z_in):
        target[..., z] += part[..., j]


def explain_detection(prep, generator: nn.Module, card, labels: np.ndarray,
                      label_ids: Sequence[int], **kwargs: Any) -> Explanation:
    """:func:`explain_volume` on a ``PreparedExam`` with a model card (``inputs``, ``mode``,
    ``context_slices``, ``residual``); ``labels`` on the prepared grid."""
    return explain_volume(
        generator, prep.stack(card.inputs), prep.brain_mask, labels, label_ids,
        sequences=card.inputs, mode=card.mode, context=card.context_slices,
        residual=card.residual, **kwargs)


def explain_lesions(out: Path, exam, prep, generator: nn.Module, card, result) -> list[Path]:
    """``gdsynth predict --explain``'s per-exam step (``RunConfig.explain`` of
    :mod:`gdsynth.inference.cohort`): explain every lesion of the detection ``result`` that is in
    its label map, add the attribution columns to ``result.lesions`` and write the maps
    (:func:`write_attribution_maps`); return their paths. A sequence the exam lacks
    (``prep.missing``: zeros for the generator) gets neither columns nor maps."""
    explanation = explain_detection(prep, generator, card, result.labels,
                                    [les["label"] for les in result.lesions
                                     if les.get("in_dseg", True)])
    gone = tuple(f"_{s}" for s in getattr(prep, "missing", ()))
    if gone:
        explanation.columns = {lab: {k: v for k, v in cols.items() if not k.endswith(gone)}
                               for lab, cols in explanation.columns.items()}
        explanation.maps = {s: m for s, m in explanation.maps.items() if f"_{s}" not in gone}
        explanation.relevance = {s: m for s, m in explanation.relevance.items()
                                 if f"_{s}" not in gone}
    explanation.annotate(result.lesions)
    return write_attribution_maps(out, exam, prep, explanation)


def write_attribution_maps(out: Path, exam, prep, explanation: Explanation) -> list[Path]:
    """Write ``_desc-attribution<Seq>_T1w.nii.gz`` (IG or ablation) and
    ``_desc-relevance<Seq>_T1w.nii.gz`` (LRP), each with its sidecar, per sequence on the input
    T1w grid."""
    from gdsynth.inference import outputs as O
    from gdsynth.inference.prep import to_native
    from gdsynth.io import write_image

    written = []
    for kind, maps, what in ((O.attribution_output, explanation.maps, "Attribution"),
                             (O.relevance_output, explanation.relevance, "LRP relevance")):
        for s, m in maps.items():
            path = write_image(kind(s).path(out, exam), to_native(prep, m), prep.native_geometry)
            written += [path, O.write_output_sidecar(out, exam, path, f"{what} of the synthetic "
                                              f"enhancement to the input {s}")]
    return written
