"""Reader-study statistics on a fabricated answer set with hand-computed results."""

from __future__ import annotations

import csv
import json
import math

import pytest

from gdsynth.io import write_json
from gdsynth.review.analysis import analyze_study, cohen_kappa, match_clicks, wilson
from gdsynth.review.store import Answer, AnswerStore

REFS = [{"label": 1, "centre": [0.0, 0.0, 0.0]}, {"label": 2, "centre": [20.0, 0.0, 0.0]}]
KINDS = {"c1": "real", "c2": "real", "c3": "real", "c4": "synthetic", "c5": "synthetic",
         "c6": "synthetic"}
ALICE = ["real", "real", "real", "synthetic", "synthetic", "synthetic"]  # 6/6 correct
BOB = ["real", "real", "synthetic", "synthetic", "synthetic", "real"]  # 4/6 correct


@pytest.fixture()
def study(tmp_path):
    key = {c: {"exam": f"sub-{c}", "kind": k, "reference_lesions": REFS} for c, k in KINDS.items()}
    write_json(tmp_path / "key" / "unblinding.json", {"cases": key})
    store = AnswerStore(tmp_path / "answers.sqlite")
    for n, case in enumerate(KINDS):
        clicks = {"c1": [[1.0, 1.0, 1.0]], "c4": [[20.0, 3.0, 0.0], [50.0, 50.0, 50.0]]}
        store.save(Answer("alice", case, ALICE[n], quality=5 if n < 3 else 2,
                          confidence=4, lesions=clicks.get(case, [])))
        store.save(Answer("bob", case, BOB[n], quality=4 if n < 3 else 3, confidence=2))
    return tmp_path


def test_known_accuracy_kappa_and_sensitivity(study):
    result = analyze_study(study)
    alice, bob, pooled = (result["accuracy"][k] for k in ("alice", "bob", "pooled"))
    assert (alice["correct"], alice["n"], bob["correct"], pooled["correct"]) == (6, 6, 4, 10)
    z2 = 1.959963984540054**2
    assert alice["ci_low"] == pytest.approx(6 / (6 + z2))  # Wilson lower bound at k = n
    assert alice["ci_high"] == 1.0
    assert alice["p_value"] == pytest.approx(2 / 64)  # exact two-sided binomial, 6/6
    assert bob["p_value"] == pytest.approx(44 / 64)  # P(X<=2)+P(X>=4) = (1+6+15)*2/64
    assert result["kappa"] == [{"reader_a": "alice", "reader_b": "bob", "n": 6,
                                "agreement": pytest.approx(4 / 6), "kappa": pytest.approx(1 / 3)}]
    lesions = result["lesions"]["alice"]
    assert lesions["real"]["found"] == 1 and lesions["real"]["reference_lesions"] == 6
    assert lesions["synthetic"]["found"] == 1 and lesions["synthetic"]["false_positive_clicks"] == 1
    assert lesions["real"]["sensitivity"] == pytest.approx(1 / 6)
    quality = result["likert"]["quality"]
    assert quality["real"]["counts"] == {"1": 0, "2": 0, "3": 0, "4": 3, "5": 3}
    assert quality["synthetic"]["counts"] == {"1": 0, "2": 3, "3": 3, "4": 0, "5": 0}
    assert quality["p_value"] < 0.01  # real rated better
    assert result["likert"]["confidence"]["p_value"] == pytest.approx(1.0)  # same distributions
    out = study / "analysis"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"]["pooled"]["accuracy"] == pytest.approx(10 / 12)
    with open(out / "answers.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12 and {r["kind"] for r in rows} == {"real", "synthetic"}
    for name in ("accuracy", "kappa", "likert", "lesions"):
        assert (out / f"{name}.csv").stat().st_size > 50


def test_small_pieces():
    assert all(math.isnan(v) for v in wilson(0, 0))  # nothing to estimate
    low, high = wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert cohen_kappa(["a", "b"], ["a", "b"]) == 1.0
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))
    assert match_clicks([[0, 0, 4.9]], REFS, 5.0) == (1, 0)
    assert match_clicks([[0, 0, 5.1]], REFS, 5.0) == (0, 1)
    assert match_clicks([], REFS, 5.0) == (0, 0)
