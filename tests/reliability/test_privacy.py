"""No patient name, ID or date from DICOM tags or NIfTI header text reaches any output, table,
log, report, review site, reader study or W&B run file.

Inputs: a DICOM T1w series (one file per slice, written with SimpleITK, patient tags set) listed
in a cohort table, and BIDS NIfTI files whose ``descrip``/``aux_file``/``intent_name`` hold
secrets. Every output byte is searched (``.nii.gz`` decompressed first), with the logs.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from gdsynth.io import read_image
from tests.reliability.common import TINY_RECIPE, run_cli

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

NAME, PATIENT_ID, BIRTH, STUDY_DATE = "Doe^Jane", "PID7364519", "19710203", "20251224"
NIFTI_SECRETS = {"descrip": "Jane Doe MRN 8812734", "aux_file": "Doe^Jane^8812734",
                 "intent_name": "MRN8812734"}
SECRETS = [NAME, "Jane", PATIENT_ID, BIRTH, STUDY_DATE, "8812734"]


def write_dicom_series(array: np.ndarray, geometry, folder: Path) -> Path:
    """One DICOM file per axial slice of an (X, Y, Z) volume, patient tags filled in."""
    import SimpleITK as sitk

    folder.mkdir(parents=True)
    volume = sitk.GetImageFromArray(np.clip(array.T, 0, 32767).astype(np.int16))
    volume.SetSpacing(geometry.spacing)
    direction = geometry.direction_matrix
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series = "1.2.826.0.1.3680043.2.1125.42"
    for k in range(volume.GetDepth()):
        piece = volume[:, :, k]
        origin = geometry.index_to_world(np.array([0.0, 0.0, float(k)]))
        tags = {"0010|0010": NAME, "0010|0020": PATIENT_ID, "0010|0030": BIRTH,
                "0008|0020": STUDY_DATE, "0008|0021": STUDY_DATE, "0008|0060": "MR",
                "0020|000e": series, "0020|000d": series + ".1",
                "0020|0032": "\\".join(f"{v:.4f}" for v in origin),
                "0020|0037": "\\".join(f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1])),
                "0020|0013": str(k + 1), "0018|0050": f"{geometry.spacing[2]:.4f}",
                "0028|0030": f"{geometry.spacing[1]:.4f}\\{geometry.spacing[0]:.4f}"}
        for key, value in tags.items():
            piece.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"IM{k + 1:04d}.dcm"))
        writer.Execute(piece)
    return folder


def with_secret_header(src: Path, dst: Path) -> Path:
    """Copy a NIfTI file with patient text in its header fields."""
    img = nib.load(src)
    header = img.header.copy()
    for field, value in NIFTI_SECRETS.items():
        header[field] = value.encode()
    dst.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, header), dst)
    return dst


def leaks(root: Path, *texts: str) -> list[str]:
    """Where a secret occurs: every file under ``root`` (gunzipped when gzip) and ``texts``."""
    found = []
    files = [p for p in root.rglob("*") if p.is_file()]
    blobs = [(str(p), gzip.decompress(p.read_bytes()) if p.read_bytes()[:2] == b"\x1f\x8b"
              else p.read_bytes()) for p in files]
    blobs += [(f"log {i}", t.encode()) for i, t in enumerate(texts)]
    for where, data in blobs:
        for secret in SECRETS:
            if secret.encode() in data or secret.encode("utf-16-le") in data:
                found.append(f"{secret!r} in {where}")
    return found


@pytest.fixture(scope="module")
def secret_bids(phantom4, phantom2, tmp_path_factory) -> Path:
    """phantom4 with patient text in every raw NIfTI header, and the phantom truth (2 mm)."""
    root = tmp_path_factory.mktemp("secret") / "bids"
    for src in sorted(phantom4.rglob("*.nii.gz")):
        with_secret_header(src, root / src.relative_to(phantom4))
    shutil.copytree(phantom2 / "derivatives", root / "derivatives")
    return root


def test_dicom_and_nifti_header_text_never_reach_outputs(secret_bids, random_model, tmp_path):
    """Cohort table: T1w from a DICOM series with patient tags, T2w/FLAIR NIfTI with secrets."""
    anat = secret_bids / "sub-001" / "anat"
    t1w, geometry = read_image(anat / "sub-001_T1w.nii.gz")
    dicom = write_dicom_series(t1w, geometry, tmp_path / "dicom" / "t1w")
    back, back_geometry = read_image(dicom)
    assert back.shape == t1w.shape and back_geometry.same_grid(geometry, atol=1e-3)
    table = tmp_path / "cohort.tsv"
    table.write_text("subject\tt1w\tt2w\tflair\n"
                     f"P01\t{dicom}\t{anat / 'sub-001_T2w.nii.gz'}\t{anat / 'sub-001_FLAIR.nii.gz'}\n")
    out = tmp_path / "pred"
    result = run_cli(["--verbose", "predict", str(table), "-m", str(random_model), "-o", str(out),
                      "--device", "cpu", "--mc-samples", "2"])
    assert result.code == 0, result.stderr
    assert len(list(out.rglob("*.nii.gz"))) >= 4
    assert leaks(out, result.stdout, result.stderr) == []


def test_header_text_never_reaches_reports_sites_studies(secret_bids, random_model, tmp_path):
    """BIDS with secrets in every NIfTI header → predict, evaluate, review, reader study."""
    pred = tmp_path / "pred"
    logs = []
    for args in (["predict", str(secret_bids), "-m", str(random_model), "-o", str(pred),
                  "--device", "cpu", "--participant-label", "001", "--participant-label", "002"],
                 ["evaluate", str(pred), "--reference", str(secret_bids), "-o",
                  str(tmp_path / "report")],
                 ["review", str(pred), "--bids", str(secret_bids), "-o", str(tmp_path / "site")],
                 ["reader-study", "create", str(pred), "--bids", str(secret_bids), "-o",
                  str(tmp_path / "study"), "--readers", "alice", "--seed", "1"]):
        result = run_cli(["--verbose", *args])
        assert result.code == 0, (args[0], result.stderr)
        logs += [result.stdout, result.stderr]
    for folder in ("pred", "report", "site", "study"):
        assert any((tmp_path / folder).rglob("*")), folder
    assert leaks(tmp_path, *logs) == []


def test_header_text_never_reaches_training_logs_or_wandb(secret_bids, tmp_path, monkeypatch):
    """Training with the W&B tracker (offline) on headers holding secrets: nothing in the run
    folder (config, checkpoints, panels, metrics, wandb files, model card) nor in the logs."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = yaml.safe_load(TINY_RECIPE.read_text())
    config["trainer"].update(max_steps=2, tracker="wandb")
    config["prep"] = {"n4": False}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    result = run_cli(["--verbose", "train", str(secret_bids), "-o", str(run), "--config",
                      str(recipe), "--prep-dir", str(tmp_path / "prep")])
    assert result.code == 0, result.stderr
    assert list((run / "wandb").rglob("*.wandb"))
    assert leaks(tmp_path, result.stdout, result.stderr) == []
