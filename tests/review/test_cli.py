"""The review and reader-study commands end to end through the gdsynth console entry point."""

from __future__ import annotations

import json
import stat

from gdsynth.cli.main import main
from gdsynth.review.server import create_app


def test_review_command(cohort, tmp_path, capsys):
    bids, pred = cohort
    out = tmp_path / "site"
    assert main(["review", str(pred), "--bids", str(bids), "-o", str(out)]) == 0
    assert (out / "index.html").exists() and (out / "exam-e002.html").exists()
    assert capsys.readouterr().out.strip().endswith("index.html")
    assert main(["review", str(tmp_path / "nothing"), "--bids", str(bids), "-o", str(out)]) == 2
    assert "prediction folder not found" in capsys.readouterr().err


def test_reader_study_commands(cohort, tmp_path, capsys):
    bids, pred = cohort
    study, tokens_file = tmp_path / "study", tmp_path / "tokens.tsv"
    code = main(["reader-study", "create", str(pred), "--bids", str(bids), "-o", str(study),
                 "--readers", "alice", "bob", "--seed", "2", "--reference", str(pred),
                 "--tokens-file", str(tokens_file)])
    assert code == 0
    printed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert sorted(printed) == ["alice", "bob"]
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
    assert dict(line.split("\t") for line in tokens_file.read_text().splitlines()) == printed
    client = create_app(study).test_client()
    readers = json.loads((study / "readers.json").read_text())
    for name, token in printed.items():
        for case_id in readers[name]["order"]:
            reply = client.post(f"/r/{token}/answer", json={
                "case_id": case_id, "call": "real", "quality": 3, "confidence": 3,
                "lesions": []})
            assert reply.status_code == 200
    assert main(["reader-study", "analyze", str(study), "-o", str(tmp_path / "out")]) == 0
    assert "4 answers; pooled accuracy 0.500" in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["kappa"][0]["n"] == 2 and summary["lesions"]["pooled"]["real"]["found"] == 0
