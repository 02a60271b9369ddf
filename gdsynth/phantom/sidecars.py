"""BIDS JSON sidecars of the phantom images: sequence parameters only (no personal data).

Times are in seconds as BIDS requires (RepetitionTime, EchoTime, InversionTime), angles in degrees,
SliceThickness in mm.
"""

from __future__ import annotations

from gdsynth import __version__
from gdsynth.phantom.config import Site
from gdsynth.phantom.signal import PD_TE_MS, PD_TR_MS, Protocol

#: Spin-echo sequences: (pulse sequence type, TR ms, TE ms) of an exam's protocol.
_SPIN_ECHO = {
    "T2w": lambda p: ("spin echo", p.t2w_tr_ms, p.t2w_te_ms),
    "PD": lambda p: ("proton-density weighted spin echo", PD_TR_MS, PD_TE_MS),
}


def sidecar(sequence: str, protocol: Protocol, site: Site, resolution: float) -> dict:
    """Sidecar of one of T1w, T1w_gd, T2w, FLAIR, PD."""
    p = protocol
    common = {
        "Modality": "MR",
        "MagneticFieldStrength": site.field_strength_t,
        "Manufacturer": "gdsynth digital phantom",
        "ManufacturersModelName": site.manufacturer_model,
        "SoftwareVersions": f"gdsynth {__version__}",
        "InstitutionName": site.name,
    }
    if sequence in ("T1w", "T1w_gd"):
        data = {
            "MRAcquisitionType": "3D",
            "ScanningSequence": "GR",
            "SequenceVariant": "SP",
            "PulseSequenceType": "spoiled gradient echo",
            "RepetitionTime": round(p.t1w_tr_ms / 1000, 6),
            "EchoTime": round(p.t1w_te_ms / 1000, 6),
            "FlipAngle": round(p.t1w_flip_deg, 3),
            "SliceThickness": resolution,
        }
        if p.t1w_family == "mprage":
            data.update(ScanningSequence=["GR", "IR"], SequenceVariant=["SP", "MP"],
                        PulseSequenceType="inversion-prepared gradient echo (MPRAGE-like)",
                        InversionTime=round(p.t1w_ti_ms / 1000, 6))
        if site.t1w_acquired_mm > 0:
            data["AcquisitionVoxelSize"] = [round(site.t1w_acquired_mm, 3)] * 3
        if sequence == "T1w_gd":
            data["ContrastBolusIngredient"] = "GADOLINIUM"
    elif sequence in _SPIN_ECHO:
        kind, tr_ms, te_ms = _SPIN_ECHO[sequence](p)
        data = {
            "MRAcquisitionType": "2D",
            "ScanningSequence": "SE",
            "SequenceVariant": "NONE",
            "PulseSequenceType": kind,
            "RepetitionTime": round(tr_ms / 1000, 6),
            "EchoTime": round(te_ms / 1000, 6),
            "FlipAngle": 90,
            "SliceThickness": p.slice_mm,
        }
    elif sequence == "FLAIR":
        data = {
            "MRAcquisitionType": "2D",
            "ScanningSequence": ["SE", "IR"],
            "SequenceVariant": "NONE",
            "PulseSequenceType": "fluid-attenuated inversion recovery",
            "RepetitionTime": round(p.flair_tr_ms / 1000, 6),
            "EchoTime": round(p.flair_te_ms / 1000, 6),
            "InversionTime": round(p.flair_ti_ms / 1000, 6),
            "FlipAngle": 90,
            "SliceThickness": p.slice_mm,
        }
    else:
        raise ValueError(f"unknown sequence {sequence!r}")
    if sequence in ("T2w", "FLAIR", "PD") and site.t2_acquisition == "3D":
        data["MRAcquisitionType"] = "3D"
    if sequence in ("T2w", "FLAIR", "PD") and site.slice_gap_mm > 0 and site.t2_acquisition == "2D":
        data["SpacingBetweenSlices"] = round(p.slice_mm + site.slice_gap_mm, 3)
    return {**common, **data}
