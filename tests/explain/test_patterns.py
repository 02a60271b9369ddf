"""Spectral relevance analysis: alignment, distance bands, clustering, the page, the CLI."""

from __future__ import annotations

import html

import numpy as np
import pytest

from gdsynth.cli.main import main
from gdsynth.errors import ConfigError
from gdsynth.explain import folder as explain_folder_module
from gdsynth.explain.patterns import (
    BANDS,
    LesionPattern,
    band_sums,
    cluster_patterns,
    features,
    lesion_pattern,
    sample_patch,
)
from gdsynth.inference import outputs as O
from gdsynth.io import read_tsv, write_labels, write_tsv
from gdsynth.io.bids import discover
from gdsynth.review.patterns import write_pattern_page
from tests.explain.test_lrp import lesion_case, tiny_unet
from tests.fixtures.inference import make_model, simple_prepare, write_exam

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SEQS = ["T1w", "T2w", "FLAIR"]
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'


def test_sample_patch_is_centred():
    plane = np.zeros((40, 40), np.float32)
    plane[20, 10] = 1.0  # 10 voxels = 20 mm left of the centre at 2 mm
    patch = sample_patch(plane, (20.0, 20.0), 20.0, (2.0, 2.0), 21)
    assert patch.shape == (21, 21)
    assert np.unravel_index(np.argmax(patch), patch.shape) == (10, 0)


def test_band_sums_put_relevance_where_it_is():
    mask = np.zeros((20, 20, 3), bool)
    mask[9:11, 9:11, 1] = True
    rel = np.zeros((3, 20, 20, 3), np.float32)
    rel[0, 10, 10, 1] = 2.0  # in the lesion, T1w
    rel[2, 10, 12, 1] = -1.0  # 2 mm away at 1 mm spacing, FLAIR
    rel[1, 10, 18, 1] = 0.5  # 8 mm away, T2w
    bands = band_sums(rel, mask, (1.0, 1.0, 1.0), SEQS)
    assert bands["T1w"]["lesion"] == 2.0
    assert bands["FLAIR"]["shell_0_3mm"] == -1.0
    assert bands["T2w"]["elsewhere"] == 0.5
    assert bands["abs"] == {"lesion": 2.0, "shell_0_3mm": 1.0, "shell_3_6mm": 0.0, "elsewhere": 0.5}
    assert bands["abs_FLAIR"] == {"lesion": 0.0, "shell_0_3mm": 1.0, "shell_3_6mm": 0.0,
                                  "elsewhere": 0.0}


def _pattern(kind: int, seed: int) -> LesionPattern:
    """Relevance at the centre (kind 0) or in a spot 10 px off centre (kind 1), plus noise."""
    rng = np.random.default_rng(seed)
    rel = 0.02 * rng.standard_normal((3, 16, 16)).astype(np.float32)
    if kind == 0:
        rel[2, 7:9, 7:9] += 1.0
    else:
        rel[0, 1:3, 12:14] += 1.0
    bands = {s: dict.fromkeys(BANDS, 0.0) for s in SEQS} | {"abs": dict.fromkeys(BANDS, 1.0)}
    return LesionPattern("sub-01", seed, kind == 0, rel, np.ones((3, 16, 16), np.float32), bands,
                         1.0, 1.0, 2.0, 15.0, info={"halo": 0.1 * kind, "border": "sharp"})


def test_spectral_clustering_separates_two_patterns():
    patterns = [_pattern(k % 2, k) for k in range(12)]
    clusters, info = cluster_patterns(patterns)
    assert info["chosen_by"] == "eigengap" and info["n_clusters"] == 2
    assert sorted(c.n for c in clusters) == [6, 6]
    for c in clusters:
        assert len({p.active for p in c.members}) == 1  # each cluster is one kind
        assert c.n_active in (0, 6) and c.n_known == 6
    centre = next(c for c in clusters if c.n_active == 6)
    spot = next(c for c in clusters if c.n_active == 0)
    assert centre.mean_relevance[2, 7:9, 7:9].mean() > 20 * abs(spot.mean_relevance[2, 7:9, 7:9].mean())
    assert spot.mean_relevance[0, 1:3, 12:14].mean() > 20 * abs(centre.mean_relevance[0, 1:3, 12:14].mean())
    assert (centre.mean_negative <= 0).all() and (centre.mean_positive >= 0).all()
    assert centre.describe(["halo", "border"]) == {"halo": "0", "border": "sharp (100%)"}


def _cued_pattern(kind: int, cue: bool, seed: int) -> LesionPattern:
    """A lesion whose own relevance (strong; T1w for kind 0, FLAIR for kind 1) dominates the map,
    and, when ``cue``, a faint spot 10 mm to its +x side (the window is ±15 mm over 32 pixels)."""
    rng = np.random.default_rng(seed)
    rel = 0.01 * rng.standard_normal((3, 32, 32)).astype(np.float32)
    rel[0 if kind == 0 else 2, 14:18, 14:18] += 2.0
    if cue:
        rel[1, 25:28, 14:18] += 0.3  # offsets 10–12 mm from the centre along +x
    bands = {s: dict.fromkeys(BANDS, 0.0) for s in SEQS} | {"abs": dict.fromkeys(BANDS, 1.0)}
    return LesionPattern("sub-01", seed, cue, rel, np.ones((3, 32, 32), np.float32), bands,
                         1.0, 1.0, 2.0, 15.0, info={"kind": kind})


def test_context_clustering_finds_a_cue_the_lesions_hide():
    # the lesions' own relevance splits them by kind; the cue, beside half of each kind, is what
    # the context region (beyond 3 mm of a 2 mm-radius lesion) is left with
    patterns = [_cued_pattern(k % 2, (k // 2) % 2 == 0, k) for k in range(16)]
    whole, info_all = cluster_patterns(patterns, n_clusters=2)
    assert info_all["region"] == "all" and info_all["shell_mm"] is None
    assert sorted({m.info["kind"] for m in c.members}.__len__() for c in whole) == [1, 1]
    context, info = cluster_patterns(patterns, n_clusters=2, region="context")
    assert info["region"] == "context" and info["shell_mm"] == 3.0
    assert sorted(c.n for c in context) == [8, 8]
    for c in context:
        assert len({p.active for p in c.members}) == 1  # each cluster: cued or not, both kinds
        assert len({p.info["kind"] for p in c.members}) == 2


def test_context_features_leave_out_the_lesion_and_its_shell():
    p = _cued_pattern(0, True, 0)
    x = features([p], region="context", shell_mm=3.0).reshape(3, 16, 16)
    dist = p.distance_map()
    pooled = dist.reshape(16, 2, 16, 2).max((1, 3))
    assert np.all(x[:, pooled <= 3.0] == 0)  # nothing within 3 mm of the 2 mm lesion
    # what stands out in what is left: the cue (T2w, pooled rows 12–13, columns 7–8)
    seq, row, col = np.unravel_index(np.argmax(np.abs(x)), x.shape)
    assert seq == 1 and 12 <= row <= 13 and 7 <= col <= 8
    with pytest.raises(ConfigError, match="pattern region"):
        features([p], region="outside")
    with pytest.raises(ConfigError, match="shell"):
        cluster_patterns([p], region="context", shell_mm=-1.0)


def test_lesion_pattern_on_a_tiny_unet():
    net = tiny_unet()
    vol, mask = lesion_case()
    pattern, full = lesion_pattern(net, vol, mask, (2.0, 2.0, 2.0), sequences=SEQS, mode="2.5d",
                                   context=1, size=16, ig_steps=2, baseline=np.ones_like(vol))
    assert pattern.relevance.shape == pattern.image.shape == pattern.ig.shape == (3, 16, 16)
    assert pattern.half_width_mm == 15.0  # the floor: a 9-voxel lesion is small
    total = sum(pattern.bands[s][b] for s in SEQS for b in BANDS)
    assert total == pytest.approx(float(full.sum()), rel=1e-4, abs=1e-5)
    assert sum(pattern.band_fractions().values()) == pytest.approx(1.0)
    # the sampled in-plane distance from the lesion: 0 on it, growing outwards
    assert pattern.distance.shape == (16, 16) and pattern.distance[7:9, 7:9].max() < 1.0
    assert pattern.distance[2, 8] > 6.0 and pattern.distance[0, 0] > 0.0  # 0,0: off the plane


def test_lesion_pattern_alignment():
    net = tiny_unet()
    vol, mask = lesion_case()
    big = np.zeros_like(mask)
    x, y, z = (s // 2 for s in mask.shape)
    big[x - 4 : x + 4, y - 4 : y + 4, z - 1 : z + 2] = True  # r ≈ 7.4 mm at 2 mm: 4 r > 15 mm
    kw = {"sequences": SEQS, "mode": "2.5d", "context": 1, "size": 16}
    scaled, _ = lesion_pattern(net, vol, big, (2.0, 2.0, 2.0), **kw)
    fixed, _ = lesion_pattern(net, vol, big, (2.0, 2.0, 2.0), alignment="mm", **kw)
    assert scaled.half_width_mm == pytest.approx(4 * scaled.radius_mm) and scaled.half_width_mm > 25
    assert fixed.half_width_mm == 15.0
    with pytest.raises(ConfigError, match="pattern alignment"):
        lesion_pattern(net, vol, big, (2.0, 2.0, 2.0), alignment="brain", **kw)


def test_pattern_page_is_escaped(tmp_path):
    patterns = [_pattern(k % 2, k) for k in range(6)]
    for p in patterns:
        p.exam = HOSTILE
        p.info["note"] = HOSTILE
    clusters, info = cluster_patterns(patterns, n_clusters=2)
    page = write_pattern_page(tmp_path / "pat", patterns, clusters, SEQS, clustering=info,
                              title=HOSTILE, describe=["halo", "note"], notes=[HOSTILE])
    text = page.read_text()
    assert "<script>window" not in text and "<img src=x" not in text
    assert html.escape(HOSTILE, quote=False)[:30] in text.replace("&#34;", '"')
    assert (tmp_path / "pat" / "img" / "cluster-0.png").read_bytes()[:4] == b"\x89PNG"
    assert len(read_tsv(tmp_path / "pat" / "patterns_lesions.tsv")) == 6
    assert len(read_tsv(tmp_path / "pat" / "patterns_clusters.tsv")) == 2


def test_pattern_page_renders_in_chromium(tmp_path):
    from tests.review.browser import severe_logs, start_driver, stop_driver, wait_for

    patterns = [_pattern(k % 2, k) for k in range(6)]
    patterns[0].exam = HOSTILE
    clusters, info = cluster_patterns(patterns, n_clusters=2)
    page = write_pattern_page(tmp_path / "pat", patterns, clusters, SEQS, clustering=info,
                              title=HOSTILE)
    driver = start_driver()
    try:
        driver.get(page.as_uri())
        wait_for(driver, "document.readyState === 'complete'")
        loaded = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        assert loaded == [True, True]
        assert driver.execute_script("return document.querySelectorAll('section.cluster').length") == 2
        assert driver.execute_script("return window.__pwned === undefined")
        assert HOSTILE in driver.execute_script("return document.querySelector('h1').textContent")
        assert not severe_logs(driver)
    finally:
        stop_driver(driver)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("m") / "tiny", dropout=0.0)


def test_explain_patterns_command(tmp_path, model, monkeypatch):
    monkeypatch.setattr(explain_folder_module, "prepare_exam", simple_prepare)
    from gdsynth.inference.prep import to_native
    from gdsynth.models.folder import load_model_folder

    bids = tmp_path / "bids"
    for n, sub in enumerate(("01", "02", "03")):
        write_exam(bids, sub, "RAS", seed=n)
    _, card = load_model_folder(model)
    pred = tmp_path / "pred"
    for exam in discover(bids):
        prep = simple_prepare(exam, card)
        labels = np.zeros(prep.brain_mask.shape, np.int32)
        x, y, z = (s // 2 for s in labels.shape)
        labels[x + 1 : x + 4, y - 1 : y + 2, z - 1 : z + 1] = 1
        labels[x - 5 : x - 3, y + 2 : y + 4, z : z + 2] = 2
        write_labels(O.LESION_LABELS.path(pred, exam), to_native(prep, labels, nearest=True),
                     prep.native_geometry)
        write_tsv(O.LESION_TABLE.path(pred, exam),
                  [{"label": 1, "score": 0.9}, {"label": 2, "score": 0.5}], O.LESION_COLUMNS)
    out = tmp_path / "explained"
    assert main(["-q", "explain", str(pred), "--bids", str(bids), "-m", str(model), "-o", str(out),
                 "--patterns", "--clusters", "2", "--device", "cpu"]) == 0
    rows = read_tsv(out / "patterns" / "patterns_lesions.tsv")
    assert len(rows) == 6 and {r["cluster"] for r in rows} == {"0", "1"}
    assert all(r["active"] == "n/a" for r in rows)  # no phantom truth in this dataset
    assert "Cluster 1" in (out / "patterns" / "patterns.html").read_text()
    # the context analysis in a fixed window: what a Clever-Hans check clusters
    assert main(["-q", "explain", str(pred), "--bids", str(bids), "-m", str(model), "-o",
                 str(tmp_path / "ctx"), "--patterns", "--clusters", "2", "--device", "cpu",
                 "--pattern-region", "context", "--pattern-align", "mm",
                 "--pattern-shell-mm", "2"]) == 0
    rows = read_tsv(tmp_path / "ctx" / "patterns" / "patterns_lesions.tsv")
    assert len(rows) == 6 and {float(r["half_width_mm"]) for r in rows} == {15.0}
    assert "beyond 2 mm of each lesion" in (tmp_path / "ctx" / "patterns" / "patterns.html").read_text()


def test_review_site_links_the_pattern_page(tmp_path):
    from gdsynth.review.site import build_site
    from tests.fixtures.review import make_cohort

    bids, pred = make_cohort(tmp_path, subjects=("01",))
    site = tmp_path / "site"
    build_site(pred, bids, site)
    assert "Relevance patterns" not in (site / "index.html").read_text()
    patterns = [_pattern(k % 2, k) for k in range(4)]
    clusters, info = cluster_patterns(patterns, n_clusters=2)
    write_pattern_page(pred / "patterns", patterns, clusters, SEQS, clustering=info)
    build_site(pred, bids, site)
    assert '<a href="patterns/patterns.html">Relevance patterns</a>' in (site / "index.html").read_text()
    assert (site / "patterns" / "img" / "cluster-1.png").is_file()
