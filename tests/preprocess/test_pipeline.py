"""prepare_to_folder / prepare_arrays on a synthetic exam: outputs, provenance, cache, errors."""

import dataclasses
import json

import numpy as np
import pytest

from gdsynth.errors import GeometryError, MissingSequenceError
from gdsynth.io import read_image, write_image
from gdsynth.io.bids import discover
from gdsynth.preprocess import (
    PrepConfig,
    load_prepared,
    move_to_grid,
    open_prepared,
    prepare_arrays,
    prepare_to_folder,
)
from gdsynth.preprocess.register import mean_displacement
from tests.preprocess import synth

FAST = PrepConfig(register=False, n4=False)  # cache and error tests: no registration, no N4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    ex = synth.make_exam(root, t1_spacing=2.0)
    return root, ex, discover(root)[0]


@pytest.fixture(scope="module")
def prepared(dataset, tmp_path_factory):
    root, ex, exam = dataset
    out = tmp_path_factory.mktemp("prep")
    return out, prepare_to_folder(exam, out)


def test_outputs_and_provenance(dataset, prepared):
    root, ex, exam = dataset
    out, prep = prepared
    assert not prep.cached
    assert set(prep.paths) == {"T1w", "T2w", "FLAIR", "T1w_gd", "mask"}
    names = sorted(p.name for p in (out / "sub-01" / "anat").iterdir())
    images = ["sub-01_desc-preproc_T1w", "sub-01_desc-preproc_T2w", "sub-01_desc-preproc_FLAIR",
              "sub-01_ce-gadolinium_desc-preproc_T1w", "sub-01_desc-brain_mask"]
    assert names == sorted([*(f"{n}.nii.gz" for n in images), *(f"{n}.json" for n in images),
                            "sub-01_desc-prep_provenance.json"])  # every image has its sidecar
    assert (out / "dataset_description.json").exists()
    prov = json.loads((out / "sub-01" / "anat" / "sub-01_desc-prep_provenance.json").read_text())
    assert prov["inputs"]["T1w"]["sha256"] and prov["gdsynth_version"]
    assert set(prov["registration"]) == {"T2w", "FLAIR", "T1w_gd"}
    assert prov["native_geometry"]["shape"] == list(ex.t1w_geometry.shape)
    assert prov["exact_native_mapping"] is True
    assert set(prov["nawm_median"]) == {"T1w", "T2w", "FLAIR", "T1w_gd"}
    assert prov["timings_s"]["total"] > 0
    assert prep.geometry.orientation == "RAS" and prep.native_geometry.orientation == "LPS"


def test_registration_nawm_and_enhancement(dataset, prepared):
    _, ex, _ = dataset
    _, prep = prepared
    vols = load_prepared(prep)
    labels = synth.truth_labels(vols.geometry, skull=True)
    brain = vols.geometry.index_to_world(
        np.argwhere(np.isin(labels, [synth.WM, synth.GM, synth.LESION, synth.ENH])))
    for role, reg in prep.provenance["registration"].items():
        err = mean_displacement(np.asarray(reg["matrix_lps"]), ex.motion[role], brain)
        assert err < 1.0, f"{role}: {err:.2f} mm"
    from scipy import ndimage as ndi

    wm = ndi.binary_erosion(labels == synth.WM)
    enhancement = vols.images["T1w_gd"] - vols.images["T1w"]
    assert abs(np.median(enhancement[wm])) < 0.02
    assert np.median(enhancement[labels == synth.ENH]) > 0.1
    assert abs(np.median(enhancement[labels == synth.LESION])) < 0.1
    for image in vols.images.values():
        assert abs(np.median(image[wm]) - 1.0) < 0.03
    # a prepared map goes back to the T1w file's grid exactly
    native = move_to_grid(vols.mask.astype(np.uint8), vols.geometry, vols.native_geometry,
                          interpolation="nearest")
    t1_native, g_native = read_image(ex.paths["T1w"])
    assert native.shape == t1_native.shape and g_native.same_grid(vols.native_geometry)


def test_cache_reuse_partial_and_invalidation(tmp_path):
    ex = synth.make_exam(tmp_path / "bids", t1_spacing=3.0, sequences=("T1w", "T2w", "FLAIR"))
    exam = discover(tmp_path / "bids")[0]
    out = tmp_path / "prep"
    first = prepare_to_folder(exam, out, FAST)
    stamp = first.paths["T1w"].stat().st_mtime_ns
    again = prepare_to_folder(exam, out, FAST)
    assert again.cached and again.paths["T1w"].stat().st_mtime_ns == stamp
    assert open_prepared(exam, out).paths == first.paths
    # interrupted run: outputs without provenance are redone
    (out / "sub-01" / "anat" / "sub-01_desc-prep_provenance.json").unlink()
    assert not prepare_to_folder(exam, out, FAST).cached
    # a changed parameter recomputes
    assert not prepare_to_folder(exam, out, dataclasses.replace(FAST, spacing=4.0)).cached
    assert prepare_to_folder(exam, out, dataclasses.replace(FAST, spacing=4.0)).cached
    # a changed input recomputes
    arr, geom = read_image(ex.paths["T2w"])
    write_image(ex.paths["T2w"], arr * 1.5, geom)
    redone = prepare_to_folder(exam, out, dataclasses.replace(FAST, spacing=4.0))
    assert not redone.cached
    assert redone.geometry.spacing == (4.0, 4.0, 4.0)
    assert prepare_to_folder(exam, out, FAST, force=False).cached is False  # back to 3 mm: inputs changed


def test_missing_sequence_names_exam_and_sequence(tmp_path):
    synth.make_exam(tmp_path, t1_spacing=3.0, sequences=("T1w", "T2w"))
    exam = discover(tmp_path)[0]
    with pytest.raises(MissingSequenceError, match="sub-01.*FLAIR"):
        prepare_arrays(exam, FAST)
    # a model that needs only T1w + T2w can still be served
    vols = prepare_arrays(exam, dataclasses.replace(FAST, sequences=("T1w", "T2w")))
    assert set(vols.images) == {"T1w", "T2w"}


def test_non_overlapping_image_names_the_file(tmp_path):
    ex = synth.make_exam(tmp_path, t1_spacing=3.0, sequences=("T1w", "T2w", "FLAIR"))
    arr, geom = read_image(ex.paths["FLAIR"])
    write_image(ex.paths["FLAIR"], arr, geom.replace(origin=(500.0, 0.0, 0.0)))
    with pytest.raises(GeometryError, match="FLAIR.nii.gz: does not overlap"):
        prepare_arrays(discover(tmp_path)[0], FAST)


def test_mismatched_field_of_view_and_given_mask(tmp_path):
    """A T2w covering only part of the head, and a provided brain mask, still work."""
    ex = synth.make_exam(tmp_path, t1_spacing=2.0, sequences=("T1w", "T2w", "FLAIR"))
    arr, geom = read_image(ex.paths["T2w"])
    write_image(ex.paths["T2w"], np.ascontiguousarray(arr[:, :, 8:-8]),
                geom.replace(shape=arr[:, :, 8:-8].shape,
                             origin=tuple(geom.index_to_world((0, 0, 8)))))
    labels = synth.truth_labels(ex.t1w_geometry, skull=True)
    mask_path = ex.paths["T1w"].parent / "sub-01_desc-brain_mask.nii.gz"
    write_image(mask_path, np.isin(labels, [1, 2, 3, 6, 7]).astype(np.uint8), ex.t1w_geometry)
    exam = discover(tmp_path)[0]
    assert exam.mask is not None
    vols = prepare_arrays(exam, dataclasses.replace(FAST, register=True, sequences=("T1w", "T2w")))
    assert vols.provenance["mask_source"] == "provided"
    assert vols.images["T2w"].shape == vols.geometry.shape
    assert np.isfinite(vols.images["T2w"]).all()
    brain = vols.geometry.index_to_world(np.argwhere(vols.mask))
    reg = np.asarray(vols.provenance["registration"]["T2w"]["matrix_lps"])
    # a third of the head cut away: still far better than no registration (> 4 mm)
    assert mean_displacement(np.eye(4), ex.motion["T2w"], brain) > 4.0
    assert mean_displacement(reg, ex.motion["T2w"], brain) < 1.5
