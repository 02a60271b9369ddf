"""The learned lesion stage at inference: candidates → lesion scores → dseg, table and exam call.

A fitted :class:`LesionStage` lives in the model folder as ``lesion_classifier.json`` (plain
JSON, see :mod:`gdsynth.detection.classifier`; never pickle) and is summarized in the model
card's ``lesion_stage`` section (features, operating point, held-out figures, file SHA-256).

At inference (:func:`run_stage`):

1. candidates: union of the enhancement-map candidates and the pre-contrast candidates
   (:mod:`gdsynth.detection.stage_features`);
2. lesion score = classifier probability per candidate; candidates renumbered 1..K by
   decreasing score, every one in the lesion table;
3. ``_dseg`` = the candidates with score ≥ ``lesion_threshold`` (labels 1..m: the first m rows);
4. exam: ``probability_active = sigmoid(exam_a · logit(max score) + exam_b)`` (fitted on
   out-of-fold scores of held-out exams, so it agrees with the lesion scores: no exam is certain
   from low-scored candidates); refer when ≥ ``refer_threshold`` (chosen for
   ``target_sensitivity``); the reason names the top-scored lesion, which drives the decision.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdsynth.detection.classifier import check_feature_names, model_from_dict, predict_proba
from gdsynth.detection.scoring import logit
from gdsynth.detection.stage_features import STAGE_FEATURES, CandidateSettings, feature_matrix
from gdsynth.errors import ModelError

STAGE_FILE = "lesion_classifier.json"
FORMAT = "gdsynth-lesion-classifier/1"
_FIELDS = {"format", "features", "model", "exam_a", "exam_b", "lesion_threshold",
           "refer_threshold", "target_sensitivity", "candidates", "heldout"}


@dataclass
class LesionStage:
    """A fitted lesion stage (see module doc); ``model`` is a validated classifier dict."""

    features: list[str]
    model: dict[str, Any]
    exam_a: float = 1.0
    exam_b: float = 0.0
    lesion_threshold: float = 0.5
    refer_threshold: float = 0.5
    target_sensitivity: float = 0.95
    candidates: CandidateSettings = field(default_factory=CandidateSettings)
    heldout: dict[str, Any] = field(default_factory=dict)

    def lesion_scores(self, feats: list[dict[str, Any]]) -> np.ndarray:
        """P(true enhancing lesion) (N,) of candidate feature dicts."""
        return predict_proba(self.model, feature_matrix(feats, self.features))

    def exam_probability(self, scores: np.ndarray | list[float]) -> float:
        """``probability_active`` from an exam's lesion scores (0 candidates: score 0)."""
        top = float(np.max(scores)) if len(scores) else 0.0
        z = self.exam_a * float(logit(top)) + self.exam_b
        return float(1 / (1 + np.exp(-z)))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "features": list(self.features), "model": self.model,
                "exam_a": self.exam_a, "exam_b": self.exam_b,
                "lesion_threshold": self.lesion_threshold, "refer_threshold": self.refer_threshold,
                "target_sensitivity": self.target_sensitivity,
                "candidates": self.candidates.to_dict(), "heldout": self.heldout}

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> LesionStage:
        """Validated stage; :class:`ModelError` naming ``path`` for anything unexpected."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelError(path, f"not a gdsynth lesion classifier (need format {FORMAT!r})")
        if set(data) != _FIELDS:
            raise ModelError(path, f"lesion classifier fields must be exactly {sorted(_FIELDS)}")
        features = check_feature_names(data["features"], STAGE_FEATURES, path)
        numbers = {}
        for key in ("exam_a", "exam_b", "lesion_threshold", "refer_threshold",
                    "target_sensitivity"):
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
                raise ModelError(path, f"{key!r} must be a finite number")
            numbers[key] = float(v)
        cand = data["candidates"]
        known = CandidateSettings().to_dict()
        if not isinstance(cand, dict) or not set(cand) <= set(known) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in cand.values()):
            raise ModelError(path, f"'candidates' must map some of {sorted(known)} to numbers")
        if not isinstance(data["heldout"], dict):
            raise ModelError(path, "'heldout' must be a JSON object")
        return cls(features=features, model=model_from_dict(data["model"], len(features), path),
                   candidates=CandidateSettings(**{k: float(v) for k, v in cand.items()}),
                   heldout=data["heldout"], **numbers)

    def save(self, model_dir: str | Path) -> Path:
        from gdsynth.io import write_json

        return write_json(Path(model_dir) / STAGE_FILE, self.to_dict())

    def card_section(self, path: Path) -> dict[str, Any]:
        """What the model card records: file, SHA-256, features, operating point, figures."""
        return {"file": STAGE_FILE, "sha256": file_digest(path), "classifier": self.model["kind"],
                "features": list(self.features),
                "operating_point": {"lesion_threshold": self.lesion_threshold,
                                    "refer_threshold": self.refer_threshold,
                                    "target_sensitivity": self.target_sensitivity,
                                    "exam_a": self.exam_a, "exam_b": self.exam_b},
                "heldout": self.heldout}


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_stage(model_dir: str | Path, card_section: dict[str, Any] | None = None
               ) -> LesionStage | None:
    """The model folder's stage, or ``None`` when the card records none and no file exists.

    The file must be the one the card records (same SHA-256); it is parsed as JSON and
    validated, nothing in it is executed.
    """
    path = Path(model_dir) / STAGE_FILE
    if card_section and card_section.get("status") == "not fitted":
        return None
    if not card_section:
        if path.exists():
            raise ModelError(path, "lesion classifier present but the model card does not record "
                                   "it; run 'gdsynth fit-detector' again")
        return None
    if not path.is_file():
        raise ModelError(path, "the model card records a lesion classifier but the file is missing")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != card_section.get("sha256"):
        raise ModelError(path, "lesion classifier does not match the SHA-256 in the model card")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(path, f"lesion classifier is not valid JSON ({exc})") from None
    return LesionStage.from_dict(data, path)


def read_stage_file(path: str | Path) -> LesionStage:
    """Parse and validate a classifier file on its own (no card check)."""
    p = Path(path)
    try:
        data = json.loads(p.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(p, f"lesion classifier is not readable JSON ({exc})") from None
    return LesionStage.from_dict(data, p)


def stage_summary(lesions: list[dict[str, Any]], stage: LesionStage, *,
                  quality: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Exam summary from scored candidates (in decreasing score order, labels 1..K)."""
    scores = [float(les["score"]) for les in lesions]
    prob = stage.exam_probability(scores)
    refer = prob >= stage.refer_threshold
    n_dseg = sum(s >= stage.lesion_threshold for s in scores)
    top = lesions[0] if lesions else None
    if quality:
        refer, reason = True, "quality: " + "; ".join(quality)
    elif top is not None:
        what = (f"lesion {top['label']} (score {top['score']:.2f}, {top['volume_mm3']:.0f} mm³, "
                f"{top.get('location', 'unknown location')}, voxel {top['i']:.0f},{top['j']:.0f},"
                f"{top['k']:.0f})")
        if refer:
            reason = (f"{what} gives probability_active {prob:.3f} ≥ refer threshold "
                      f"{stage.refer_threshold:.3f}")
        else:
            reason = (f"no active lesion expected: top candidate {what} gives probability_active "
                      f"{prob:.3f} < refer threshold {stage.refer_threshold:.3f}")
    else:
        reason = (f"no candidate; probability_active {prob:.3f} "
                  f"{'≥' if refer else '<'} refer threshold {stage.refer_threshold:.3f}")
    return {"probability_active": prob, "n_lesions": int(n_dseg), "n_candidates": len(scores),
            "refer_for_gadolinium": bool(refer), "reason": reason,
            "driving_lesion": None if top is None else int(top["label"]),
            "top_lesion_score": None if top is None else float(top["score"]),
            "lesion_threshold": stage.lesion_threshold, "operating_threshold": stage.refer_threshold,
            "target_sensitivity": stage.target_sensitivity, "quality_flags": list(quality),
            "stage": "learned"}
