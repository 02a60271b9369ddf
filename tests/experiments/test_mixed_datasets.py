"""experiments/mixed_datasets.py's data views, without training: the mask-only view has no
post-Gd T1w but keeps every other file and the phantom truth, and nothing is copied."""

from __future__ import annotations

import pytest

from tests.utils import load_experiment


@pytest.fixture(scope="module")
def md():
    return load_experiment("mixed_datasets")


def _cohort(root):
    files = {
        "sub-001/anat/sub-001_T1w.nii.gz": "t1",
        "sub-001/anat/sub-001_ce-gadolinium_T1w.nii.gz": "gd",
        "sub-001/anat/sub-001_FLAIR.nii.gz": "fl",
        "sub-002/anat/sub-002_T1w.nii.gz": "t1b",
        "derivatives/phantom/sub-001/anat/sub-001_label-L_desc-all_mask.nii.gz": "mask",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return files


def test_mask_only_view_drops_the_post_gd_and_links_the_rest(md, tmp_path):
    src = tmp_path / "src"
    _cohort(src)
    view = md.make_view(src, tmp_path / "view", ["sub-001"], drop_post=True)
    names = sorted(p.name for p in (view / "sub-001" / "anat").iterdir())
    assert names == ["sub-001_FLAIR.nii.gz", "sub-001_T1w.nii.gz"]
    assert not (view / "sub-002").exists()  # only the chosen subjects
    t1 = view / "sub-001" / "anat" / "sub-001_T1w.nii.gz"
    assert t1.is_symlink() and t1.read_text() == "t1"
    truth = view / "derivatives" / "phantom" / "sub-001" / "anat" / "sub-001_label-L_desc-all_mask.nii.gz"
    assert truth.read_text() == "mask"
    # the source is untouched: the post-Gd is still there
    assert (src / "sub-001" / "anat" / "sub-001_ce-gadolinium_T1w.nii.gz").read_text() == "gd"


def test_gd_view_keeps_the_post_gd_and_a_stale_view_is_rebuilt(md, tmp_path):
    src = tmp_path / "src"
    _cohort(src)
    view = md.make_view(src, tmp_path / "view", ["sub-001"], drop_post=False)
    assert (view / "sub-001" / "anat" / "sub-001_ce-gadolinium_T1w.nii.gz").read_text() == "gd"
    stamp = (view / ".done").stat().st_mtime_ns
    assert md.make_view(src, tmp_path / "view", ["sub-001"], drop_post=False) == view
    assert (view / ".done").stat().st_mtime_ns == stamp  # the same view: reused
    # another subject list (or drop_post) rebuilds the view instead of reusing a stale one
    md.make_view(src, tmp_path / "view", ["sub-002"], drop_post=False)
    assert (view / "sub-002").exists() and not (view / "sub-001").exists()
