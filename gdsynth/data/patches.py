"""From torchio patches/subjects to network tensors (2D, 2.5D, 3D).

2.5D: a ``(P, P, 2k+1)`` patch of each sequence ``(1, X, Y, Z)`` becomes ``(2k+1, X, Y)``; the
sequences are concatenated sequence-major, so the input is ``(C * (2k+1), H=X, W=Y)`` with channel
``c * (2k+1) + j`` = sequence ``c``, slice ``z - k + j`` (:mod:`gdsynth.data.layout`). Target, pre, brain and lesion are the
central slice ``(1, H, W)``. 3D keeps ``(C, X, Y, Z)``.

Mixed batches (:class:`PatchCollate`): a patch of a mask-only exam has no ``target``, a patch of
an exam without all-lesion labels no ``lesions_all``; the batch then carries per-patch flags
``has_target`` / ``has_all_lesions`` (``(B,)`` float 0/1) and a stand-in where the tensor is
missing (the pre-contrast T1w as target, zeros as ``lesions_all``), which the losses leave out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torchio as tio

from gdsynth.data.layout import slices_to_channels
from gdsynth.data.subjects import ALL_LESIONS, BRAIN, LESION, TARGET
from gdsynth.models.card import Mode

#: Per-patch flags of a training batch: which patches have a target (post-Gd T1w) and which
#: have an all-lesion map (``lesions_all``); ``(B,)`` float 0/1.
HAS_TARGET = "has_target"
HAS_ALL_LESIONS = "has_all_lesions"


def patch_size_for(mode: str, patch: int, context_slices: int) -> tuple[int, int, int]:
    """torchio patch size (X, Y, Z) for a mode: 2D/2.5D ``(P, P, 2k+1)``, 3D ``(P, P, P)``."""
    if Mode(mode) is Mode.three_d:
        return (patch, patch, patch)
    k = context_slices if Mode(mode) is Mode.two_half_d else 0
    return (patch, patch, 2 * k + 1)


class TensorLabelSampler(tio.LabelSampler):
    """``tio.LabelSampler`` whose patches are plain ``{name: (C, X, Y, Z) tensor}`` dicts.

    torchio crops a patch by running a ``Crop`` transform on the whole subject (copies and
    history); slicing the tensors directly makes patch extraction in the training process ~10x
    cheaper, which matters because the queue samples patches in the main process.
    """

    def crop(self, subject: tio.Subject, index_ini, patch_size) -> dict[str, torch.Tensor]:  # type: ignore[override]
        i, j, k = (int(v) for v in index_ini)
        si, sj, sk = (int(v) for v in patch_size)
        return {name: image.data[:, i : i + si, j : j + sj, k : k + sk].clone()
                for name, image in subject.get_images_dict(intensity_only=False).items()}


def to_tensors(subject: Mapping, inputs: Sequence[str], mode: str,
               missing: frozenset[str] = frozenset()) -> dict[str, torch.Tensor]:
    """One patch (a ``tio.Subject`` or a :class:`TensorLabelSampler` dict; or a whole volume in
    3D) as network tensors: ``input``, ``target``, ``pre``, ``brain``, ``lesion`` (float32), and
    ``lesions_all`` when the subject has it (target of the ``lesions`` head). The sequences in
    ``missing`` enter the input as zeros: how inference presents a sequence an exam lacks."""
    def get(key: str) -> torch.Tensor:
        value = subject[key]
        return (value.data if isinstance(value, tio.Image) else value).float()

    x = torch.cat([torch.zeros_like(get(s)) if s in missing else get(s) for s in inputs], dim=0)
    out = {"input": x, "pre": get("T1w"), "brain": get(BRAIN)}
    if TARGET in subject:
        out["target"] = get(TARGET)
    if LESION in subject:
        out["lesion"] = get(LESION)
    if ALL_LESIONS in subject:
        out[ALL_LESIONS] = get(ALL_LESIONS)
    if Mode(mode) is Mode.three_d:
        return out
    centre = x.shape[-1] // 2
    res = {"input": slices_to_channels(x)}
    for k, v in out.items():
        if k != "input":
            res[k] = v[..., centre]
    return res


class PatchCollate:
    """``collate_fn`` turning a list of torchio patches into a dict of batched tensors.

    Input drop-out (the BraSyn practice for missing sequences): each sequence of ``optional``
    is left out of each patch's input, independently, with probability ``dropout`` (drawn from
    torch's global generator, which the data module reseeds every epoch); the target, the
    pre-contrast T1w and the labels are never touched.

    Patches of mask-only exams (no ``target``) or without ``lesions_all`` get a stand-in tensor
    and a 0 in the ``has_target`` / ``has_all_lesions`` flag (see the module docstring); a flag
    is added only when some patch lacks the tensor (``lesions_all``: and ``all_lesions`` says it
    is expected, or another patch has it), so a batch where every patch has its targets is as
    before.
    """

    def __init__(self, inputs: Sequence[str], mode: str, *, dropout: float = 0.0,
                 optional: Sequence[str] = (), all_lesions: bool = False) -> None:
        self.inputs = list(inputs)
        self.all_lesions = bool(all_lesions)  # lesions_all expected (stand-in + flag if absent)
        self.mode = mode
        self.dropout = float(dropout)
        self.optional = [s for s in self.inputs if s in set(optional)]

    def missing(self) -> frozenset[str]:
        """The sequences one patch goes without (none unless drop-out is on)."""
        if self.dropout <= 0 or not self.optional:
            return frozenset()
        draw = torch.rand(len(self.optional))
        return frozenset(s for s, u in zip(self.optional, draw.tolist(), strict=True)
                         if u < self.dropout)

    def __call__(self, patches: list[Mapping]) -> dict[str, torch.Tensor]:
        items = [to_tensors(p, self.inputs, self.mode, self.missing()) for p in patches]
        flags = {}
        for key, flag, stand_in in (("target", HAS_TARGET, lambda it: it["pre"].clone()),
                                    (ALL_LESIONS, HAS_ALL_LESIONS,
                                     lambda it: torch.zeros_like(it["brain"]))):
            has = [key in it for it in items]
            if not all(has) and (key == "target" or self.all_lesions or any(has)):
                flags[flag] = torch.tensor(has, dtype=torch.float32)
                for it in items:
                    it.setdefault(key, stand_in(it))
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        return {**batch, **flags}


class VolumeCollate:
    """``collate_fn`` for validation: one whole subject → dict of ``(C, X, Y, Z)`` tensors + id."""

    def __init__(self, inputs: Sequence[str]) -> None:
        self.inputs = list(inputs)

    def __call__(self, subjects: list[tio.Subject]) -> dict:
        s = subjects[0]
        out: dict = to_tensors(s, self.inputs, Mode.three_d.value)
        out["id"] = s["exam_id"]
        out["spacing"] = torch.tensor(s["T1w"].spacing)
        return out
