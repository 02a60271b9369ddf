"""The review says which inputs a prediction was made from, as escaped text (issue #18)."""

from __future__ import annotations

from gdsynth.review.render import render
from gdsynth.review.site import summary_inputs


def test_inputs_text_from_the_activity_summary():
    assert summary_inputs({"inputs_used": ["T1w", "FLAIR"], "inputs_missing": ["T2w"]}) == \
        "T1w, FLAIR (no T2w)"
    assert summary_inputs({"inputs_used": ["T1w", "T2w", "FLAIR"], "inputs_missing": []}) == \
        "T1w, T2w, FLAIR"
    assert summary_inputs({}) == ""  # a summary written before gdsynth recorded its inputs
    assert summary_inputs({"inputs_used": "T1w"}) == ""  # not a list: shown as unknown


def test_inputs_are_escaped_on_the_cohort_table_and_the_exam_page():
    hostile = summary_inputs({"inputs_used": ["T1w", "<script>x</script>"],
                              "inputs_missing": ["T2w"]})
    row = {"exam": "sub-01", "page": "exam-e001.html", "mosaic": "m.png", "probability": 0.5,
           "n_lesions": 1, "refer": True, "has_real": False, "metrics": {}, "inputs": hostile}
    index = render("index.html", static="static/", rows=[row], metric_columns=[], embedded=True,
                   patterns=None)
    assert "<script>x</script>" not in index and "&lt;script&gt;x&lt;/script&gt; (no T2w)" in index
    summary = {"probability": 0.5, "n_lesions": 1, "refer": True, "reason": "r", "inputs": hostile}
    page = render("exam.html", static="static/", data="data/e001/", exam="sub-01",
                  summary=summary, overlays=[], threshold=None, attr_headers=[], lesions=[],
                  mosaic="m.png", embedded=True)
    assert "inputs: <b>T1w, &lt;script&gt;" in page and "<script>x</script>" not in page
