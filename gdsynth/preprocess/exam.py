"""Prepared exams on disk (:class:`PreparedFiles`): write, cache, reload, cohort loop.

The in-memory view inference uses is :class:`gdsynth.inference.prep.PreparedExam`; arrays go
back to the native grid with :func:`gdsynth.preprocess.move_to_grid`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gdsynth.batch import Skipped, iter_batch
from gdsynth.errors import InputFileMissingError
from gdsynth.io import Geometry, read_image, write_image, write_json, write_labels
from gdsynth.io.bids import (
    Exam,
    dataset_root,
    derivative_path,
    write_dataset_description,
    write_sidecar,
)
from gdsynth.io.sequences import SEQUENCES, sequence
from gdsynth.preprocess.config import PrepConfig
from gdsynth.preprocess.pipeline import PreparedVolumes, prepare_arrays
from gdsynth.preprocess.provenance import (
    cache_key,
    complete_provenance,
    input_records,
    read_provenance,
)

log = logging.getLogger(__name__)

PIPELINE = "gdsynth-prep"
README = """# gdsynth-prep

Exams prepared by gdsynth (`gdsynth prepare`, or the preparation cache of `gdsynth predict`):
T2w, FLAIR and the post-gadolinium T1w rigidly registered to the T1w, reoriented to RAS,
resampled to the model's spacing, N4 bias-corrected and divided by their normal-appearing white
matter median (NAWM = 1), with a brain mask (`_desc-brain_mask`). Not skull-stripped.
`*_desc-prep_provenance.json` records the parameters, transforms, input hashes and timings (the
cache key); it has no BIDS suffix and is listed in `.bidsignore`.
"""


@dataclass
class PreparedFiles:
    """A prepared exam on disk (a ``gdsynth-prep`` folder entry). ``paths`` keys: T1w, T2w,
    FLAIR, T1w_gd, mask (present ones); :func:`load_prepared` reads them back."""

    exam: Exam
    paths: dict[str, Path]
    provenance: dict
    geometry: Geometry
    native_geometry: Geometry
    cached: bool = False


def output_path(out_root: str | Path, exam: Exam, role: str) -> Path:
    """Derivative path of one prepared output (role as in :attr:`PreparedFiles.paths`)."""
    if role == "mask":
        return derivative_path(out_root, exam, "mask", desc="brain")
    if role == "provenance":
        return derivative_path(out_root, exam, "provenance", ext=".json", desc="prep")
    info = sequence(role)  # the registry's BIDS suffix and entities, e.g. _ce-gadolinium_..._T1w
    return derivative_path(out_root, exam, info.suffix, **info.entity_dict, desc="preproc")


def _from_provenance(exam: Exam, out_root: Path, prov: dict, cached: bool) -> PreparedFiles:
    paths = {r: Path(out_root) / rel for r, rel in prov["outputs"].items()}
    return PreparedFiles(exam, paths, prov, Geometry.from_dict(prov["prepared_geometry"]),
                         Geometry.from_dict(prov["native_geometry"]), cached)


def prepare_to_folder(exam: Exam, out_root: Path, config: PrepConfig = PrepConfig(), *,
                      force: bool = False) -> PreparedFiles:
    """Prepare ``exam`` into ``out_root`` (a gdsynth-prep derivative folder), using the cache.

    Skips the work when a provenance JSON with the same cache key exists (``cached=True``).
    Otherwise the old provenance is removed first, images and mask are written, and the
    provenance JSON is written last, so an interrupted run is redone next time.
    """
    out_root = Path(out_root)
    prov_path = output_path(out_root, exam, "provenance")
    exam.require(config.sequences)
    hashes = input_records(exam, config)
    key = cache_key(hashes, config)
    if not force:
        prov = complete_provenance(prov_path, key, out_root)
        if prov is not None:
            return _from_provenance(exam, out_root, prov, cached=True)
    prov_path.unlink(missing_ok=True)
    vols = prepare_arrays(exam, config, hashes=hashes)
    return write_prepared(exam, out_root, vols, key)


def write_prepared(exam: Exam, out_root: str | Path, vols: PreparedVolumes, key: str) -> PreparedFiles:
    """Write prepared volumes (from :func:`prepare_arrays`) into the cache ``out_root`` under
    ``key`` (:func:`gdsynth.preprocess.provenance.cache_key` of the inputs and config they were
    prepared with): images and mask first, the provenance JSON last."""
    out_root = Path(out_root)
    prov_path = output_path(out_root, exam, "provenance")
    prov_path.unlink(missing_ok=True)
    source = dataset_root(exam.t1w) if exam.t1w is not None else None
    write_dataset_description(out_root, PIPELINE, description="gdsynth preparation: registered, "
                              "bias-corrected, NAWM-normalized images in the prepared space",
                              sources=[source] if source else [], readme=README,
                              ignore=("*_provenance.json",))
    outputs: dict[str, str] = {}
    for role, image in vols.images.items():
        path = write_image(output_path(out_root, exam, role), image, vols.geometry)
        write_sidecar(path, out_root, description=f"{role} registered to the T1w, bias-corrected, "
                      "NAWM-normalized (NAWM median = 1)", sources=[exam.path(role)],
                      skull_stripped=False)
        outputs[role] = str(path.relative_to(out_root))
    mask_path = write_labels(output_path(out_root, exam, "mask"), vols.mask.astype(np.uint8),
                             vols.geometry)
    write_sidecar(mask_path, out_root, description="Brain mask", Type="Brain",
                  sources=[p for r in ("T1w", "FLAIR") if (p := exam.path(r)) is not None])
    outputs["mask"] = str(mask_path.relative_to(out_root))
    stale = output_path(out_root, exam, "T1w_gd")
    if "T1w_gd" not in vols.images:
        stale.unlink(missing_ok=True)
    prov = dict(vols.provenance, outputs=outputs, cache_key=key)
    write_json(prov_path, prov)
    return _from_provenance(exam, out_root, prov, cached=False)


@dataclass
class CacheLookup:
    """Result of :func:`find_prepared`: the valid cached exam, or why there is none.

    ``absent``: the folder holds no preparation of this exam. ``foreign``: it holds this exam
    prepared with other parameters (not a stale copy of this preparation: a cache user should
    leave it alone).
    """

    prepared: PreparedFiles | None
    reason: str = ""
    absent: bool = False
    foreign: bool = False


def _plain(config: PrepConfig) -> dict:
    """``config.to_dict()`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config.to_dict(), default=str))


def find_prepared(exam: Exam, out_root: str | Path, config: PrepConfig, *,
                  hashes: dict | None = None, post_optional: bool = False) -> CacheLookup:
    """The exam as prepared in ``out_root`` when that cache entry is valid for ``config``: the
    same cache key (input SHA-256, parameters, gdsynth version) and every output present, as
    :func:`prepare_to_folder` decides. Nothing is computed or written.

    ``post_optional``: an entry prepared with or without the real post-Gd T1w (``use_post``) is
    valid too; the pre-contrast outputs do not depend on it. ``hashes`` are the
    :func:`input_records` for ``config`` (with ``use_post=True`` when ``post_optional``).
    """
    root = Path(out_root)
    prov_path = output_path(root, exam, "provenance")
    variants = [config]
    if post_optional:
        variants = [replace(config, use_post=True), replace(config, use_post=False)]
    if hashes is None:
        hashes = input_records(exam, variants[0])
    prov = read_provenance(prov_path)
    if prov is None:
        return CacheLookup(None, f"no preparation of {exam.prefix} in {root}", absent=True)
    for variant in variants:
        used = hashes if variant.use_post else {k: v for k, v in hashes.items() if k != "T1w_gd"}
        found = complete_provenance(prov_path, cache_key(used, variant), root)
        if found is not None:
            return CacheLookup(_from_provenance(exam, root, found, cached=True))
    wanted = [_plain(v) for v in variants]
    have = prov.get("parameters")
    if have not in wanted:
        diff = sorted(k for k in set(wanted[0]) | set(have or {})
                      if k != "use_post" and (have or {}).get(k) != wanted[0].get(k))
        shown = ", ".join(f"{k}={(have or {}).get(k)!r} (needed {wanted[0].get(k)!r})"
                          for k in diff[:3])
        return CacheLookup(None, f"prepared there with other parameters: {shown or 'use_post'}",
                           foreign=True)
    from gdsynth import __version__

    if prov.get("gdsynth_version") != __version__:
        return CacheLookup(None, f"prepared there by gdsynth {prov.get('gdsynth_version')}")
    old = {r: v.get("sha256") for r, v in (prov.get("inputs") or {}).items()}
    changed = sorted(r for r in set(old) | set(hashes)
                     if r in hashes and old.get(r) != hashes[r]["sha256"])
    if changed:
        return CacheLookup(None, f"inputs changed since it was prepared ({', '.join(changed)})")
    return CacheLookup(None, "the cached preparation is incomplete")


def open_prepared(exam: Exam, out_root: str | Path) -> PreparedFiles:
    """The prepared exam already in ``out_root`` (no cache check, no computation)."""
    prov_path = output_path(out_root, exam, "provenance")
    prov = read_provenance(prov_path)
    if prov is None or "outputs" not in prov:
        raise InputFileMissingError(prov_path, f"exam {exam.prefix} is not prepared "
                                    "(run 'gdsynth prepare' first)")
    return _from_provenance(exam, Path(out_root), prov, cached=True)


def load_prepared(prepared: PreparedFiles) -> PreparedVolumes:
    """Read a prepared exam's images and mask back into memory (float32 / bool arrays)."""
    images: dict[str, np.ndarray] = {}
    for role in SEQUENCES:  # registry order
        if role in prepared.paths:
            images[role], _ = read_image(prepared.paths[role])
    mask, _ = read_image(prepared.paths["mask"], allow_constant=True)
    return PreparedVolumes(images, mask > 0.5, prepared.geometry, prepared.native_geometry,
                           prepared.provenance)


def _run_one(args: tuple[Exam, Path, PrepConfig, bool, int]) -> None | Skipped:
    """One exam of :func:`prepare_cohort` (in a worker process when ``threads``, SimpleITK's
    threads there); :class:`~gdsynth.batch.Skipped` when it was prepared before."""
    exam, out_root, config, force, threads = args
    if threads:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    prepared = prepare_to_folder(exam, out_root, config, force=force)
    return Skipped() if prepared.cached else None


def prepare_cohort_to_folder(exams: Sequence[Exam], out_root: Path,
                             config: PrepConfig = PrepConfig(), *, workers: int = 1,
                             force: bool = False) -> list:
    """Prepare every exam into ``out_root`` (:func:`prepare_to_folder`); failures are recorded (``CaseResult`` with status ``failed``), not
    raised. ``workers`` > 1 runs exams in parallel processes."""
    jobs = [(e, Path(out_root), config, force, 0) for e in exams]
    if workers > 1 and len(jobs) > 1:  # worker processes share the cores
        import os

        threads = max(1, (os.cpu_count() or 1) // workers)
        jobs = [(*j[:4], threads) for j in jobs]
    return list(iter_batch(jobs, _run_one, case=lambda job: job[0].prefix, description="prepare",
                           workers=workers))
