"""Output names, provenance fingerprints and the completion check used to resume cohort runs.

All names come from :func:`gdsynth.io.bids.derivative_path` and are BIDS-valid (checked by the
official validator in the tests): images and label maps carry a JSON sidecar (``Sources``,
``SkullStripped``), the lesion label map a ``dseg.tsv`` lookup; the tables and records BIDS has no
place for are listed in the folder's ``.bidsignore`` (:data:`BIDS_IGNORE`). Readers use
:meth:`Output.find`, which also finds the names of gdsynth 0.1 for one release. The activity summary JSON is written
last by ``detect`` (and the synthesis provenance JSON last by ``synthesize``); an exam counts as
done when that file exists and records the same model, inputs and settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdsynth.io import file_sha256
from gdsynth.io.bids import Exam, derivative_path, find_derivative, source_uri
from gdsynth.io.bids import write_sidecar as _write_sidecar
from gdsynth.io.sequences import input_names


@dataclass(frozen=True)
class Output:
    """One output kind: BIDS suffix, extension and entities."""

    suffix: str
    ext: str = ".nii.gz"
    ce: str | None = None
    label: str | None = None
    desc: str | None = None

    def path(self, root: str | Path, exam: Exam) -> Path:
        return derivative_path(root, exam, self.suffix, self.ext, ce=self.ce, label=self.label,
                               desc=self.desc)

    def find(self, root: str | Path, exam: Exam) -> Path:
        """:meth:`path`, or the old (gdsynth 0.1) name of the same file when only that exists
        (:func:`gdsynth.io.bids.find_derivative`, with a deprecation warning)."""
        return find_derivative(root, exam, self.suffix, self.ext, ce=self.ce, label=self.label,
                               desc=self.desc)


SYNTHETIC = Output("T1w", ce="gadolinium", desc="synthetic")
#: Synthetic post-Gd minus pre-contrast T1w (NAWM = 1 units): a T1w-derived map (was ``_map``).
ENHANCEMENT = Output("T1w", desc="enhancement")
#: MC-dropout standard deviation of the synthetic post-Gd (NAWM = 1 units; was ``_map``).
UNCERTAINTY = Output("T1w", desc="uncertainty")
#: Lesion instance labels 1..N (rows of the lesion table); lookup in the ``_dseg.tsv`` beside it.
LESION_LABELS = Output("dseg", desc="enhancing")
LESION_LOOKUP = Output("dseg", ".tsv", desc="enhancing")
LESION_TABLE = Output("lesions", ".tsv", desc="enhancing")
SUMMARY = Output("summary", ".json", desc="activity")
SYNTHESIS_RECORD = Output("provenance", ".json", desc="synthesis")


def head_output(head: str) -> Output:
    """Probability map of a model head, e.g. ``_label-enhancing_probseg``."""
    return Output("probseg", label=head)


def attribution_output(sequence: str) -> Output:
    """Attribution map of one input sequence, e.g. ``_desc-attributionFLAIR_T1w`` (on the T1w
    grid; was ``_desc-attributionFLAIR_map``)."""
    return Output("T1w", desc=f"attribution{sequence}")


def relevance_output(sequence: str) -> Output:
    """LRP relevance map of one input sequence, e.g. ``_desc-relevanceFLAIR_T1w`` (on the T1w
    grid, named like the attribution maps)."""
    return Output("T1w", desc=f"relevance{sequence}")


#: ``.bidsignore`` of a gdsynth derivative: the tables and records BIDS has no suffix for.
BIDS_IGNORE = ("run_summary*.tsv", "*_lesions.tsv", "*_summary.json", "*_provenance.json",
               "sequence_importance.tsv")

README = """# gdsynth derivative

Virtual post-gadolinium T1w and enhancing MS lesions written by gdsynth, on each input T1w's grid.
Research software, not a medical device.

Per exam, in `sub-<label>[/ses-<label>]/anat/`:

| file | content |
|---|---|
| `*_ce-gadolinium_desc-synthetic_T1w.nii.gz` | synthetic post-Gd T1w, input T1w intensity scale; outside the brain mask it is the input T1w |
| `*_desc-enhancement_T1w.nii.gz` | synthetic post-Gd minus pre-contrast T1w, NAWM = 1 units, 0 outside the brain |
| `*_desc-uncertainty_T1w.nii.gz` | MC-dropout standard deviation of the synthetic post-Gd (NAWM = 1 units) |
| `*_label-<head>_probseg.nii.gz` | probability map of a model head (e.g. enhancing lesion) |
| `*_desc-enhancing_dseg.nii.gz` + `_dseg.tsv` | detected enhancing lesions, instance labels 1..N |
| `*_desc-enhancing_lesions.tsv` | one row per detected lesion (position, volume, score) |
| `*_desc-activity_summary.json` | exam-level probability of activity and referral |
| `*_desc-synthesis_provenance.json` | model, inputs and settings of the synthesis (resume key) |

Every image has a JSON sidecar with `Sources` (BIDS URIs into the linked input dataset).
`run_summary.tsv` lists every exam of the last run. The tables and records that BIDS has no
suffix for are listed in `.bidsignore`.
"""


def write_output_sidecar(out: str | Path, exam: Exam, image: Path, description: str, *,
                  sources: list[Path] | None = None) -> Path:
    """The BIDS sidecar of an output image on the input T1w grid: ``Sources`` (the exam's
    pre-contrast inputs unless given), ``SpatialReference`` (the input T1w) and
    ``SkullStripped: false`` (outputs cover the input's whole field of view)."""
    if sources is None:
        sources = [p for s, p in exam.files.items() if s in input_names()]
    extra = {"SpatialReference": source_uri(out, exam.t1w)} if exam.t1w is not None else {}
    return _write_sidecar(image, out, description=description, sources=sources,
                          skull_stripped=False, **extra)


def lesion_lookup(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BIDS ``dseg.tsv`` rows (index, name) of the lesion label map, one per lesion-table row."""
    return [{"index": int(r["label"]), "name": f"enhancing_lesion_{int(r['label'])}"} for r in rows]


#: Optional lesion-table columns added by ``--explain`` (``attr_ablation_T1w``, ``attr_ig_FLAIR``,
#: ``ablation_delta_T2w``...), written after :data:`LESION_COLUMNS` in sorted order.
ATTRIBUTION_PREFIXES = ("attr_", "ablation_delta_")

#: Lesion-table columns. With a learned lesion stage every candidate is a row (by decreasing
#: ``score``) and ``in_dseg`` says whether it reached the lesion threshold, i.e. is labelled in
#: the ``_dseg`` (then its label equals its row's ``label``).
LESION_COLUMNS = (
    "label", "x_mm", "y_mm", "z_mm", "i", "j", "k", "volume_mm3", "mean_enhancement",
    "max_enhancement", "score", "uncertainty", "location", "in_dseg",
)


#: Card sections that only detection reads (the lesion stage, the detection parameters): a
#: synthesis does not depend on them, so re-fitting the detector (``gdsynth fit-detector``)
#: keeps the synthesis of an earlier run valid for ``gdsynth detect``.
DETECTION_ONLY_SECTIONS = ("detection", "lesion_stage")
#: ``normalization`` keys read only by the out-of-domain check of detection.
DETECTION_ONLY_NORMALIZATION = ("domain",)


def synthesis_card(card_dict: dict[str, Any]) -> dict[str, Any]:
    """The part of a model card a synthesis depends on: the card without
    :data:`DETECTION_ONLY_SECTIONS` and the domain reference."""
    out = {k: v for k, v in card_dict.items() if k not in DETECTION_ONLY_SECTIONS}
    norm = out.get("normalization")
    if isinstance(norm, dict):
        out["normalization"] = {k: v for k, v in norm.items()
                                if k not in DETECTION_ONLY_NORMALIZATION}
    return out


def card_sha256(card_dict: dict[str, Any]) -> str:
    """SHA-256 of a model card (canonical JSON, sorted keys)."""
    import hashlib

    return hashlib.sha256(json.dumps(card_dict, sort_keys=True, default=str).encode()).hexdigest()


def model_fingerprint(model_dir: Path, card_dict: dict[str, Any]) -> dict[str, Any]:
    """Model identity recorded in every output record: name, version, weights and card hashes."""
    weights = Path(model_dir) / "generator.safetensors"
    return {
        "name": card_dict.get("name"),
        "gdsynth_version": card_dict.get("gdsynth_version"),
        "weights_sha256": file_sha256(weights) if weights.is_file() else None,
        "card_sha256": card_sha256(card_dict),
    }


def synthesis_fingerprint(fingerprint: dict[str, Any], card_dict: dict[str, Any]) -> dict[str, Any]:
    """The identity recorded with a synthesis: ``fingerprint`` (:func:`model_fingerprint`) with the
    card hash over :func:`synthesis_card` only, which a new detector does not change."""
    return {**fingerprint, "card_sha256": card_sha256(synthesis_card(card_dict))}


def input_hashes(exam: Exam, sequences: tuple[str, ...] | None = None) -> dict[str, str]:
    """SHA-256 of each file present among ``sequences`` (default: the registered inputs; file
    bytes; a DICOM folder: its files)."""
    wanted = input_names() if sequences is None else sequences
    return {s: file_sha256(p) for s in wanted if (p := exam.files.get(s)) is not None}


def other_inputs(out: str | Path, exam: Exam) -> list[str]:
    """Sequences whose input differs (SHA-256) from those the outputs of ``exam`` already in
    ``out`` were made from (its synthesis record or activity summary); [] when there are none."""
    changed: set[str] = set()
    for output in (SYNTHESIS_RECORD, SUMMARY):
        recorded = (read_record(output.path(out, exam)) or {}).get("input_sha256") or {}
        if not isinstance(recorded, dict):
            continue
        now = input_hashes(exam, tuple(recorded))
        changed |= {s for s, h in recorded.items() if now.get(s) != h}
    return sorted(changed)


def read_record(path: Path) -> dict[str, Any] | None:
    """A JSON record, or None when absent or unreadable (a run killed mid-way never leaves a
    partial file, but a user may have edited it)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(record_path: Path, key: dict[str, Any]) -> bool:
    """True when ``record_path`` exists and records the same values for every entry of ``key``
    (model fingerprint, input hashes, settings)."""
    record = read_record(record_path)
    if record is None:
        return False
    expected = json.loads(json.dumps(key))
    return all(record.get(k) == v for k, v in expected.items())
