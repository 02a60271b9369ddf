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


def test_review_serve_prints_the_url_and_serves_on_loopback(cohort, tmp_path, capsys, monkeypatch):
    """--serve binds 127.0.0.1 only, prints the URL, opens nothing; the page is served."""
    import urllib.request

    import gdsynth.review.serve as serve

    seen = {}

    def serve_forever(self):  # answer one request from the test, then stop like Ctrl-C
        seen["host"] = self.server_address[0]
        url = f"http://127.0.0.1:{self.server_address[1]}/exam-e001.html"
        import threading

        def fetch():
            with urllib.request.urlopen(url, timeout=30) as reply:
                seen["page"] = reply.read().decode()
            self.shutdown()

        threading.Thread(target=fetch).start()
        type(self).serve_forever.__wrapped__(self)

    original = serve.http.server.ThreadingHTTPServer.serve_forever
    serve_forever.__wrapped__ = original
    monkeypatch.setattr(serve.http.server.ThreadingHTTPServer, "serve_forever", serve_forever)
    monkeypatch.setattr("webbrowser.open", lambda *a, **k: seen.setdefault("browser", True))
    bids, pred = cohort
    assert main(["review", str(pred), "--bids", str(bids), "-o", str(tmp_path / "s"), "--serve"]) == 0
    err = capsys.readouterr().err
    assert seen["host"] == "127.0.0.1" and "browser" not in seen
    assert "http://127.0.0.1:" in err and "index.html" in err
    assert "GDSYNTH_EXAM" not in seen["page"] and "exam.js" in seen["page"]
