"""Output names, provenance fingerprints and the completion check used to resume cohort runs.

All names come from :func:`gdsynth.io.bids.derivative_path`. The activity summary JSON is written
last by ``detect`` (and the synthesis provenance JSON last by ``synthesize``); an exam counts as
done when that file exists and records the same model, inputs and settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdsynth.io import file_sha256
from gdsynth.io.bids import Exam, derivative_path


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


SYNTHETIC = Output("T1w", ce="gadolinium", desc="synthetic")
ENHANCEMENT = Output("map", desc="enhancement")
UNCERTAINTY = Output("map", desc="uncertainty")
LESION_LABELS = Output("dseg", label="L", desc="enhancing")
LESION_TABLE = Output("lesions", ".tsv", desc="enhancing")
SUMMARY = Output("summary", ".json", desc="activity")
SYNTHESIS_RECORD = Output("provenance", ".json", desc="synthesis")


def head_output(head: str) -> Output:
    """Probability map of a model head, e.g. ``_label-enhancing_probseg``."""
    return Output("probseg", label=head)


def attribution_output(sequence: str) -> Output:
    """Attribution map of one input sequence, e.g. ``_desc-attributionFLAIR_map``."""
    return Output("map", desc=f"attribution{sequence}")


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


def model_fingerprint(model_dir: Path, card_dict: dict[str, Any]) -> dict[str, Any]:
    """Model identity recorded in every output record: name, version, weights and card hashes."""
    import hashlib

    weights = Path(model_dir) / "generator.safetensors"
    card_text = json.dumps(card_dict, sort_keys=True, default=str).encode()
    return {
        "name": card_dict.get("name"),
        "gdsynth_version": card_dict.get("gdsynth_version"),
        "weights_sha256": file_sha256(weights) if weights.is_file() else None,
        "card_sha256": hashlib.sha256(card_text).hexdigest(),
    }


def input_hashes(exam: Exam, sequences: tuple[str, ...] = ("T1w", "T2w", "FLAIR")) -> dict[str, str]:
    """SHA-256 of each input file present (file bytes; a DICOM folder: its files)."""
    return {s: file_sha256(p) for s in sequences if (p := exam.path(s)) is not None}


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
