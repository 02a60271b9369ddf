"""The exam page says which candidates are reported lesions (learned stage: ``in_dseg``), so its
table agrees with the label map and the "lesions" count (issue #22, outputs that agree)."""

from __future__ import annotations

from gdsynth.review.render import render


def _row(label: int, score: float, reported: bool | None) -> dict:
    return {"label": label, "centre_x": 0.0, "centre_y": 0.0, "centre_z": 0.0, "fx": "0.0",
            "fy": "0.0", "fz": "0.0", "volume": "100", "mean": "0.2", "max": "0.4",
            "score": f"{score}", "uncertainty": "", "location": "deep-white-matter", "attr": [],
            "reported": reported}


def _page(lesions: list[dict]) -> str:
    summary = {"probability": 0.9, "n_lesions": 1, "refer": True, "reason": "r", "inputs": ""}
    return render("exam.html", static="static/", data="data/e001/", exam="sub-01",
                  summary=summary, overlays=[], threshold=None, attr_headers=[], lesions=lesions,
                  mosaic="m.png", embedded=True)


def test_stage_candidates_are_marked_reported_or_not():
    page = _page([_row(1, 0.36, True), _row(2, 0.02, False), _row(3, 0.01, False)])
    assert "Candidates (3; 1 reported as enhancing lesions)" in page
    assert page.count('<td class="text">yes</td>') == 1
    assert page.count('<td class="text">no</td>') == 2


def test_tables_without_in_dseg_keep_the_lesion_heading():
    page = _page([_row(1, 0.9, None), _row(2, 0.8, None)])
    assert "Detected enhancing lesions (2)" in page and "reported" not in page
