"""The static review site: files, escaping, metrics, mosaics (no browser)."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from gdsynth.errors import OutputError
from gdsynth.io import read_image, write_tsv
from gdsynth.io.bids import Exam
from gdsynth.review.exams import collect
from gdsynth.review.site import SiteOptions, build_exam, build_site
from tests.fixtures.review import make_cohort


def test_site_layout_and_contents(cohort, tmp_path):
    bids, pred = cohort
    report = tmp_path / "report"
    write_tsv(report / "per_exam.tsv", [{"exam": "sub-01", "mae": 0.0123, "ssim": 0.91},
                                       {"exam": "sub-02", "mae": 0.02, "ssim": 0.88}])
    index = build_site(pred, bids, tmp_path / "site", metrics=report)
    html = index.read_text()
    assert html.count('href="exam-e00') == 2
    assert "sub-01" in html and "sub-02" in html and "ssim" in html and "0.0123" in html
    data = tmp_path / "site" / "data" / "e001"
    names = ("T1w", "T2w", "FLAIR", "synthetic", "real", "enhancement", "uncertainty", "outline")
    # each volume stored once, as a script (file:// viewing), no NIfTI copy beside it
    assert sorted(p.name for p in data.iterdir()) == sorted(
        [f"{n}.js" for n in names] + ["exam.js", "mosaic.png"])
    assert not (tmp_path / "site" / "data" / "e002" / "real.js").exists()
    config = json.loads((data / "exam.js").read_text().split("=", 1)[1].rstrip(";\n"))
    assert [v["key"] for v in config["volumes"]] == ["T1w", "T2w", "FLAIR", "synthetic", "real"]
    assert config["volumes"][0]["script"] == "data/e001/T1w.js" and config["bundle"]
    lo, hi = config["volumes"][0]["presets"]["default"]
    assert lo == 0 < hi  # non-negative image: the default window starts at black
    assert (tmp_path / "site" / "static" / "niivue.umd.js").stat().st_size > 1_000_000
    assert (tmp_path / "site" / "static" / "niivue.LICENSE").exists()
    mosaic = mpimg.imread(data / "mosaic.png")
    assert mosaic.shape[0] > 300 and np.std(mosaic[..., :3]) > 0.05
    page = (tmp_path / "site" / "exam-e001.html").read_text()
    assert page.count('class="lesion"') == 2
    assert 'id="threshold" min="0.0" max="0.8" step="0.004" value="0.3"' in page  # detector's


def test_large_volumes_are_not_embedded(cohort, tmp_path):
    bids, pred = cohort
    build_site(pred, bids, tmp_path / "site", options=SiteOptions(embed_limit_mb=0.0))
    data = tmp_path / "site" / "data" / "e001"
    assert not (data / "T1w.js").exists() and (data / "T1w.nii.gz").exists()
    assert "--serve" in (tmp_path / "site" / "index.html").read_text()


def test_volumes_are_cropped_quantized_and_scaled(cohort, tmp_path):
    """Stored compactly: cropped to the head box (world position kept), uint8 images and
    overlays whose scaling in exam.js gives back the values (within a quantization step)."""
    bids, pred = cohort
    build_site(pred, bids, tmp_path / "site", options=SiteOptions(embed_limit_mb=0.0))
    data = tmp_path / "site" / "data" / "e001"
    config = json.loads((data / "exam.js").read_text().split("=", 1)[1].rstrip(";\n"))
    items = {v["key"]: v for v in config["volumes"] + config["overlays"]}
    source, src_geometry = read_image(pred / "sub-01" / "anat" /
                                      "sub-01_ce-gadolinium_desc-synthetic_T1w.nii.gz")
    stored, geometry = read_image(data / "synthetic.nii.gz")
    assert _dtype(data / "synthetic.nii.gz") == np.uint8 and stored.size < source.size  # head box
    ijk = np.rint(src_geometry.world_to_index(geometry.index_to_world(np.zeros(3)))).astype(int)
    window = source[ijk[0]:ijk[0] + stored.shape[0], ijk[1]:ijk[1] + stored.shape[1],
                    ijk[2]:ijk[2] + stored.shape[2]]
    value = stored * items["synthetic"]["scale"] + items["synthetic"]["offset"]
    top = value.max()  # the brightest 0.01 % saturate
    assert top >= np.percentile(window, 99.9)
    np.testing.assert_allclose(value, np.minimum(window, top), atol=items["synthetic"]["scale"])
    enh, _ = read_image(data / "enhancement.nii.gz")
    assert _dtype(data / "enhancement.nii.gz") == np.uint8 and enh.max() == 255
    assert enh.max() * items["enhancement"]["scale"] == pytest.approx(0.8, rel=0.01)
    t2, t2_geometry = read_image(data / "T2w.nii.gz")
    assert t2_geometry.spacing == (2.0, 2.0, 3.0) and t2.shape[2] <= 22


def test_quantize_round_trips_within_a_step():
    from gdsynth.review.volumes import quantize

    rng = np.random.default_rng(0)
    image = rng.normal(300, 100, (20, 20, 20))
    for bits in (8, 16):
        q = quantize(image, bits=bits)
        inside = (image >= np.percentile(image, 0.01)) & (image <= np.percentile(image, 99.99))
        back = q.stored.astype(float) * q.scale + q.offset
        assert np.abs(back - image)[inside].max() <= q.scale / 2 + 1e-9
        assert q.stored.dtype == (np.uint8 if bits == 8 else np.int16)
    overlay = quantize(np.array([-1.0, 0.0, 0.5, 1.0, 3.0]), top=1.0)
    assert overlay.stored.tolist() == [0, 0, 128, 255, 255] and overlay.offset == 0


def _dtype(path):
    import nibabel

    return nibabel.load(path).get_data_dtype()


def test_text_is_escaped(tmp_path):
    evil = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
    bids, pred = make_cohort(tmp_path, subjects=("01",), reason=evil)
    rx = collect(pred, bids)[0]
    rx.exam = Exam(subject=evil)
    rx.lesions[0]["location"] = evil
    row = build_exam(rx, "e001", tmp_path / "site", SiteOptions())
    page = (tmp_path / "site" / "exam-e001.html").read_text()
    assert row["exam"] == f"sub-{evil}"
    assert "<script>window.__xss" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;window.__xss=1&lt;/script&gt;") == 5  # title, h1, reason, lesion table, mosaic alt text


def test_output_inside_input_is_refused(cohort):
    bids, pred = cohort
    with pytest.raises(OutputError):
        build_site(pred, bids, pred / "review")
    with pytest.raises(OutputError):  # a folder that is not an earlier site is left alone
        build_site(pred, bids, bids.parent)


def test_mosaic_display_is_radiological():
    from gdsynth.io import Geometry
    from gdsynth.review.mosaic import _radiological
    from gdsynth.review.site import to_ras_view
    from tests.utils import ORIENTATIONS

    for order in ("LPS", "RAS", "PIR"):
        geometry = Geometry((10, 12, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), ORIENTATIONS[order])
        array = np.zeros(geometry.shape, np.float32)
        # the voxel nearest the patient's right, anterior, superior corner
        corner = geometry.world_to_index(np.array([-100.0, -100.0, 100.0]))  # LPS mm
        ijk = tuple(int(np.clip(round(c), 0, s - 1)) for c, s in zip(corner, geometry.shape, strict=True))
        array[ijk] = 1
        ras = to_ras_view(array, geometry)
        assert ras[-1, -1, -1] == 1, order  # RAS voxel order: right, anterior, superior last
        assert _radiological(ras[:, :, -1])[0, 0] == 1  # anterior on top, patient right on left


def test_lesion_centres_from_any_column_set(tmp_path):
    from gdsynth.io import Geometry
    from gdsynth.review.exams import read_lesions
    from tests.fixtures.review import RAS

    grid = Geometry((10, 10, 10), (2.0, 2.0, 2.0), (10.0, 10.0, 0.0), RAS)
    write_tsv(tmp_path / "t.tsv", [
        {"label": 1, "centre_x": 1.0, "centre_y": 2.0, "centre_z": 3.0},
        {"label": 2, "x_mm": 4.0, "y_mm": 5.0, "z_mm": 6.0},
        {"label": 3, "i": 1, "j": 2, "k": 3},
        {"label": 4, "location": "n/a"},
    ], ["label", "centre_x", "centre_y", "centre_z", "x_mm", "y_mm", "z_mm", "i", "j", "k",
        "location"])
    rows = read_lesions(tmp_path / "t.tsv", lambda: grid)
    centres = [(r["centre_x"], r["centre_y"], r["centre_z"]) for r in rows]
    assert centres == [(1.0, 2.0, 3.0), (4.0, 5.0, 6.0), (-8.0, -6.0, 6.0)]


def test_lesion_outlines_are_axial_on_any_voxel_order():
    from gdsynth.io import Geometry
    from gdsynth.review.volumes import axial_axes, outline
    from tests.utils import ORIENTATIONS

    cube = np.zeros((9, 9, 9), np.uint8)
    cube[2:7, 2:7, 2:7] = 3
    for order, superior_axis in (("RAS", 2), ("PIR", 1), ("LPS", 2)):
        geometry = Geometry(cube.shape, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), ORIENTATIONS[order])
        axes = axial_axes(geometry)
        assert superior_axis not in axes, order
        edge = outline(cube, axes)
        middle = np.take(edge, 4, axis=superior_axis)  # an axial slice through the cube
        assert middle.max() == 3 and middle[4, 4] == 0 and middle.sum() == 3 * 16


def test_copied_niivue_skips_the_unused_gradient_pass(tmp_path):
    """The site's NiiVue differs from the vendored build by NIIVUE_PATCH only; a build without
    the patched code is refused with the file named (not copied unpatched)."""
    from gdsynth.review.render import NIIVUE_PATCH, STATIC, copy_static, patched_niivue

    copy_static(tmp_path / "static")
    vendored = (STATIC / "niivue.umd.js").read_bytes()
    copied = (tmp_path / "static" / "niivue.umd.js").read_bytes()
    old, new = (s.encode() for s in NIIVUE_PATCH)
    assert old not in copied and copied.count(new) == 1
    assert copied.replace(new, old) == vendored
    with pytest.raises(OutputError, match="niivue.umd.js"):
        patched_niivue(vendored.replace(old, b""))
