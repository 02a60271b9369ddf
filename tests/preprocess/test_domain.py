"""The out-of-domain flag: quiet on brain MRI of other contrasts/sites, loud on foreign exams."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from gdsynth.detection.params import DetectionParams
from gdsynth.detection.patient import add_quality_flags, summarize_patient
from gdsynth.preprocess.domain import domain_flags, domain_reference, intensity_signature
from gdsynth.preprocess.normalize import nawm_mask, nawm_median

SHAPE = (40, 40, 32)


def _tissues(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A blobby brain: WM core, GM rim, CSF outside it and in ventricles (bool maps)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    wobble = ndi.gaussian_filter(rng.standard_normal(SHAPE), 4) * 3
    r = np.sqrt(x**2 + y**2 + z**2) + 0.1 * wobble
    brain = r < 0.9
    vent = (np.abs(x) < 0.15) & (np.abs(y) < 0.4) & (np.abs(z) < 0.3)
    csf = brain & ((r > 0.8) | vent)  # sulcal CSF rim and ventricles
    gm = brain & (r > 0.6) & ~csf
    wm = brain & ~gm & ~csf
    return wm, gm, csf


def _exam(seed: int, contrast: dict[str, tuple[float, float, float]], invert: bool = False):
    """Normalized T1w/T2w/FLAIR (NAWM = 1 from the T1w, as preprocessing does) and the mask."""
    rng = np.random.default_rng(seed + 100)
    wm, gm, csf = _tissues(seed)
    brain = wm | gm | csf
    raw = {}
    for name, (w, g, c) in contrast.items():
        img = 500 * (w * wm + g * gm + c * csf) * (1 + 0.03 * rng.standard_normal(SHAPE))
        raw[name] = np.where(brain, img.max() - img, 0) if invert else img * brain
    nawm = nawm_mask(raw["T1w"], brain, (1.0, 1.0, 1.0), lesion_image=raw["FLAIR"])
    return {k: v / nawm_median(v, nawm) for k, v in raw.items()}, brain


SPGR = {"T1w": (1.0, 0.75, 0.3), "T2w": (1.0, 1.3, 4.0), "FLAIR": (1.0, 1.2, 0.3)}


def _reference() -> dict:
    sigs = []
    for seed in range(4):
        jitter = {k: tuple(v * (1 + 0.05 * ((seed + i) % 3 - 1)) for i, v in enumerate(c))
                  for k, c in SPGR.items()}
        sigs.append(intensity_signature(*_exam(seed, jitter)))
    return domain_reference(sigs)


def test_ood_flag_quiet_on_other_brain_contrasts_and_fires_on_inverted_and_ct_like():
    ref = _reference()
    assert ref["n_exams"] == 4 and set(ref["sequences"]) == {"FLAIR", "T1w", "T2w"}
    assert domain_flags(*_exam(9, SPGR), ref) == []
    mprage = {**SPGR, "T1w": (1.0, 0.55, 0.15)}  # another T1w family, same tissue order
    assert domain_flags(*_exam(10, mprage), ref) == []
    inverted = domain_flags(*_exam(11, SPGR, invert=True), ref)
    assert inverted and all(f.startswith("out of domain: ") for f in inverted)
    ct_like = {k: (1.0, 1.3, 0.2) for k in SPGR}  # one CT-like image for every sequence
    assert domain_flags(*_exam(12, ct_like), ref)
    assert domain_flags(*_exam(11, SPGR, invert=True), None) == []  # a card without reference


def test_ood_flag_forces_a_referral_through_the_quality_path():
    params = DetectionParams()
    confident = summarize_patient([], params)
    assert confident["refer_for_gadolinium"] is False
    assert add_quality_flags(dict(confident), []) == confident
    flagged = add_quality_flags(confident, ["out of domain: T1w ..."])
    assert flagged["refer_for_gadolinium"] is True
    assert flagged["reason"].startswith("quality: out of domain")
    assert flagged["quality_flags"] == ["out of domain: T1w ..."]
