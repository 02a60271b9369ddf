"""Create a blinded, randomized real-vs-synthetic reader study (visual Turing test).

Layout of ``STUDY/``::

    study.json               settings (readers, case count); no exam ids, no seed
    readers.json             per reader: SHA-256 of the token, randomized case order
    public/cases/<case>/     T1w, T2w, FLAIR and post.nii.gz: the only folder ever served
    key/unblinding.json      case -> exam, real or synthetic, reference lesions: NEVER served

Each exam with a real post-Gd yields a real and a synthetic case (``cases_per_exam=2``), or one
of the two, balanced over the cohort (``cases_per_exam=1``). Both post images are re-written the
same way (float32 on the pre-contrast T1w grid, the real one rigidly registered to the T1w,
intensities scaled so the 99th percentile of the head is 1000), so file format, grid and patient
motion do not unblind the reader.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdsynth.errors import BidsError, ConfigError, OutputError
from gdsynth.io import Geometry, read_image, write_image, write_json
from gdsynth.io.bids import Exam, find_derivative
from gdsynth.io.sequences import input_names
from gdsynth.review.exams import collect
from gdsynth.review.volumes import copy_image, resample_to, window_presets

log = logging.getLogger(__name__)

PUBLIC, KEY = "public", "key"
READER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Case:
    """One blinded case: a pseudonymous id, the exam it comes from, and its post image kind."""

    case_id: str
    exam: str
    kind: str  # "real" or "synthetic"


def token_hash(token: str) -> str:
    """SHA-256 hex of a reader token (only the hash is stored)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def reference_lesions(reference: Path | None, exam: Exam) -> list[dict] | None:
    """Reference lesion centres (world RAS mm) and volumes from a ``_desc-enhancing_dseg``
    instance map in ``reference`` (e.g. the phantom truth); None when there is none."""
    if reference is None:
        return None
    path = find_derivative(reference, exam, "dseg", desc="enhancing")
    if not path.exists():
        return None
    labels, geometry = read_image(path, allow_constant=True)
    labels = np.rint(labels).astype(np.int64)
    out = []
    for value in np.unique(labels[labels > 0]):
        ijk = np.argwhere(labels == value)
        centre = geometry.index_to_world(ijk.mean(axis=0), ras=True)
        out.append({"label": int(value), "centre": [round(float(c), 3) for c in centre],
                    "volume_mm3": round(float(len(ijk) * geometry.voxel_volume), 3)})
    return out


def align_to_t1w(src: Path, t1w: np.ndarray, grid: Geometry, register: bool) -> np.ndarray:
    """The image at ``src`` on the T1w ``grid``: rigidly registered to the T1w when ``register``
    (so patient motion between pre and post scans cannot tell a real post from a synthetic one,
    which lies on the T1w grid by construction), else resampled by world coordinates."""
    array, geometry = read_image(src)
    if not register:
        return resample_to(array, geometry, grid)
    from gdsynth.errors import RegistrationError
    from gdsynth.preprocess.register import register_rigid
    from gdsynth.preprocess.resample import resample

    try:
        result = register_rigid(t1w, grid, array, geometry, name=src)
    except RegistrationError as exc:
        log.warning("%s; resampled without registration", exc)
        return resample_to(array, geometry, grid)
    return resample(array, geometry, grid, matrix_lps=result.matrix_lps).astype(np.float32)


def _write_post(array: np.ndarray, dst: Path, grid: Geometry) -> list[float]:
    """Write a blinded post image on ``grid``, head 99th percentile scaled to 1000."""
    positive = array[array > 0]
    scale = 1000.0 / float(np.percentile(positive, 99)) if positive.size else 1.0
    array = (array * scale).astype(np.float32)
    write_image(dst, array, grid, dtype=np.float32)
    return window_presets(array)


def _order(cases: list[Case], rng: random.Random) -> list[str]:
    """Random order, avoiding (when possible) the two cases of one exam back to back."""
    ids = [c.case_id for c in cases]
    exam_of = {c.case_id: c.exam for c in cases}
    best = ids[:]
    for _ in range(200):
        rng.shuffle(best)
        if all(exam_of[a] != exam_of[b] for a, b in zip(best, best[1:], strict=False)):
            break
    return best


def create_study(
    pred: Path, bids: Path, out: Path, *, readers: list[str], seed: int | None = None,
    cases_per_exam: int = 2, reference: Path | None = None, register: bool = True,
) -> dict[str, str]:
    """Write the study folder; return ``{reader: token}`` (tokens are not stored in clear)."""
    pred, bids, out = Path(pred), Path(bids), Path(out)
    if cases_per_exam not in (1, 2):
        raise ConfigError(None, f"cases_per_exam must be 1 or 2, got {cases_per_exam}")
    if not readers or len(set(readers)) != len(readers):
        raise ConfigError(None, f"give one or more distinct reader names, got {readers}")
    bad = [r for r in readers if not READER_NAME.match(r)]
    if bad:
        raise ConfigError(None, f"reader names are letters, digits, '.', '_' or '-': {bad}")
    if (out / "readers.json").exists():
        raise OutputError(out, "a study already exists here (refusing to overwrite its key)")
    if reference is None and (bids / "derivatives" / "phantom").is_dir():
        reference = bids / "derivatives" / "phantom"
    rng = random.Random(seed)
    exams = []
    for rx in collect(pred, bids):
        if "real" not in rx.files or rx.exam.missing(input_names()):
            log.warning("%s: no real post-Gd or a missing pre-contrast sequence; skipped", rx.id)
            continue
        exams.append(rx)
    if not exams:
        raise BidsError(bids, "no exam has both a real post-Gd and a synthetic one")
    rng.shuffle(exams)
    kinds = []
    for n, _ in enumerate(exams):
        kinds.append(("real", "synthetic") if cases_per_exam == 2 else
                     (("real",) if n % 2 == 0 else ("synthetic",)))
    cases, key = [], {}
    used: set[str] = set()
    for rx, exam_kinds in zip(exams, kinds, strict=True):
        refs = reference_lesions(reference, rx.exam)
        t1w, grid = read_image(rx.files["T1w"])
        for kind in exam_kinds:
            case_id = f"c{rng.getrandbits(40):010x}"
            while case_id in used:
                case_id = f"c{rng.getrandbits(40):010x}"
            used.add(case_id)
            folder = out / PUBLIC / "cases" / case_id
            volumes = []
            for role in input_names():
                array, _ = copy_image(rx.files[role], folder / f"{role}.nii.gz")
                volumes.append({"key": role, "label": role, "name": f"{role}.nii.gz",
                                "presets": window_presets(array)})
            if kind == "real":
                post = align_to_t1w(rx.files["real"], t1w, grid, register)
            else:
                post = resample_to(*read_image(rx.files["synthetic"]), grid)
            presets = _write_post(post, folder / "post.nii.gz", grid)
            volumes.append({"key": "post", "label": "Post-contrast T1w", "name": "post.nii.gz",
                            "presets": presets})
            write_json(folder / "case.json", {"case_id": case_id, "volumes": volumes})
            cases.append(Case(case_id, rx.id, kind))
            key[case_id] = {"exam": rx.id, "kind": kind, "reference_lesions": refs}
    tokens = {name: secrets.token_urlsafe(18) for name in readers}
    write_json(out / KEY / "unblinding.json",  # the seed re-derives the key: keep it here
               {"cases": key, "reference": str(reference or ""), "seed": seed})
    write_json(out / "readers.json", {
        name: {"token_sha256": token_hash(tokens[name]), "order": _order(cases, rng)}
        for name in readers
    })
    write_json(out / "study.json", {"n_cases": len(cases), "n_exams": len(exams),
                                    "cases_per_exam": cases_per_exam,
                                    "readers": list(readers)})
    (out / KEY).chmod(0o700)
    return tokens
