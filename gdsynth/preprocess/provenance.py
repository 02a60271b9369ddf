"""Provenance record and cache key of a prepared exam.

A prepared exam is complete when its provenance JSON exists (written last, atomically) and its
``cache_key`` equals the key of the current inputs (SHA-256 of each file), parameters and
gdsynth version. Anything else means: recompute.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gdsynth import __version__
from gdsynth.io import file_sha256
from gdsynth.io.bids import Exam
from gdsynth.preprocess.config import PrepConfig


def used_inputs(exam: Exam, config: PrepConfig) -> dict[str, Path]:
    """The files ``config`` reads for ``exam``, by role (T1w, T2w, FLAIR, T1w_gd, mask)."""
    roles = list(config.sequences)
    if config.use_post and exam.t1w_gd is not None:
        roles.append("T1w_gd")
    out = {r: exam.path(r) for r in roles if exam.path(r) is not None}
    if exam.mask is not None:
        out["mask"] = exam.mask
    return out  # type: ignore[return-value]


def input_records(exam: Exam, config: PrepConfig) -> dict[str, dict[str, str]]:
    """``{role: {"path": ..., "sha256": ...}}`` for every input ``config`` uses: the provenance's
    ``inputs`` (inference's records keep plain hashes, :func:`gdsynth.inference.outputs.input_hashes`)."""
    return {r: {"path": str(p), "sha256": file_sha256(p)} for r, p in used_inputs(exam, config).items()}


def cache_key(inputs: dict[str, dict[str, str]], config: PrepConfig) -> str:
    """SHA-256 of the input hashes, the parameters and the gdsynth version."""
    payload = {
        "inputs": {r: v["sha256"] for r, v in sorted(inputs.items())},
        "parameters": config.to_dict(),
        "gdsynth_version": __version__,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_provenance(path: Path) -> dict | None:
    """The provenance JSON, or None when absent or unreadable (a partial run)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def complete_provenance(prov_path: Path, key: str, out_root: Path) -> dict | None:
    """The provenance at ``prov_path`` when the exam is complete for ``key`` (same cache key, all
    its outputs present), else None."""
    prov = read_provenance(prov_path)
    if not prov or prov.get("cache_key") != key:
        return None
    outputs = prov.get("outputs", {})
    if not outputs or not all((Path(out_root) / rel).exists() for rel in outputs.values()):
        return None
    return prov
