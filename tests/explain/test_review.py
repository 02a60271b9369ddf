"""The review page shows attribution columns when the lesion table has them (and only then)."""

from __future__ import annotations

from gdsynth.io import read_tsv, write_tsv
from gdsynth.review.exams import collect
from gdsynth.review.site import attribution_columns, build_site
from tests.fixtures.review import make_cohort


def test_attribution_columns_order():
    rows = [{"attr_ig_FLAIR": 0.5, "attr_ablation_T2w": 0.1, "attr_ablation_T1w": 0.2,
             "ablation_delta_T1w": 0.3, "score": 1.0}]
    assert attribution_columns(rows) == ["attr_ablation_T1w", "attr_ablation_T2w", "attr_ig_FLAIR"]


def test_review_page_lists_attribution_shares(tmp_path):
    bids, pred = make_cohort(tmp_path, subjects=("01",))
    table = next(pred.rglob("*_desc-enhancing_lesions.tsv"))
    rows = read_tsv(table)
    for n, row in enumerate(rows):
        row.update({"attr_ablation_FLAIR": 0.61 + n / 100, "attr_ig_T2w": -0.25})
    write_tsv(table, rows)
    assert "attr_ig_T2w" in collect(pred, bids)[0].lesions[0]
    build_site(pred, bids, tmp_path / "site")
    page = (tmp_path / "site" / "exam-e001.html").read_text()
    assert "<th title=\"attribution share\">ablation FLAIR</th>" in page
    assert "<th title=\"attribution share\">ig T2w</th>" in page
    assert "<td>0.61</td>" in page and "<td>-0.25</td>" in page
    bids2, pred2 = make_cohort(tmp_path / "plain", subjects=("01",))
    build_site(pred2, bids2, tmp_path / "site2")
    assert "attribution share" not in (tmp_path / "site2" / "exam-e001.html").read_text()
