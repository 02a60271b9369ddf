"""The reader-study web app: a reader answers two cases, resumes, survives a server restart;
files outside the public folder are refused."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from gdsynth.review.server import create_app
from gdsynth.review.study import create_study


@pytest.fixture(scope="module")
def study(cohort, tmp_path_factory):
    bids, pred = cohort
    root = tmp_path_factory.mktemp("study") / "study"
    tokens = create_study(pred, bids, root, readers=["alice", "bob"], seed=7, reference=pred)
    return root, tokens


def _order(root, reader):
    return json.loads((root / "readers.json").read_text())[reader]["order"]


def _answer(case_id, call="real", lesions=()):
    return {"case_id": case_id, "call": call, "quality": 4, "confidence": 3,
            "lesions": [list(p) for p in lesions], "seconds": 20.0}


def test_reader_answers_two_cases_and_resumes(study):
    root, tokens = study
    token = tokens["alice"]
    client = create_app(root).test_client()
    assert client.get("/").status_code == 200
    assert client.post("/login", data={"token": "nope"}).status_code == 403
    login = client.post("/login", data={"token": token})
    assert login.status_code == 303 and login.headers["Location"].endswith(f"/r/{token}/")
    first = client.get(f"/r/{token}/")
    assert first.headers["Location"].endswith("/case/1")
    page = client.get(f"/r/{token}/case/1")
    assert page.status_code == 200 and b"Case 1 of 2" in page.data
    config = page.data.split(b'id="case-config">')[1].split(b"</script>")[0]
    assert b"sub-01" not in page.data and b"kind" not in config and b"synthetic" not in config
    order = _order(root, "alice")
    reply = client.post(f"/r/{token}/answer", json=_answer(order[0], lesions=[(1, 2, 3)]))
    assert reply.status_code == 200 and reply.json["next"].endswith("/case/2")
    assert client.get(f"/r/{token}/").headers["Location"].endswith("/case/2")  # resumes
    client.post(f"/r/{token}/answer", json=_answer(order[1], "synthetic"))
    done = client.get(f"/r/{token}/")
    assert done.status_code == 200 and b"All 2 cases are answered" in done.data
    # bad token, a case of no reader, a bad value: refused, nothing stored
    assert client.post("/r/forged/answer", json=_answer(order[0])).status_code == 403
    assert client.post(f"/r/{token}/answer", json=_answer("c000")).status_code == 403
    assert client.post(f"/r/{token}/answer", json={**_answer(order[0]), "quality": 9}).status_code == 400
    assert client.get("/r/forged/case/1").status_code == 403
    with sqlite3.connect(root / "answers.sqlite") as conn:
        rows = conn.execute(
            "SELECT case_id, call, lesions FROM answers WHERE reader='alice' ORDER BY created_at"
        ).fetchall()
    assert rows == [(order[0], "real", "[[1.0, 2.0, 3.0]]"), (order[1], "synthetic", "[]")]


def test_only_public_files_are_served(study, tmp_path):
    root, _ = study
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    case_id = _order(root, "bob")[0]
    (root / "public" / "cases" / case_id / "link.txt").symlink_to(outside)
    client = create_app(root).test_client()
    assert client.get(f"/files/cases/{case_id}/T1w.nii.gz").status_code == 200
    for url in (
        "/files/../key/unblinding.json",
        "/files/cases/..%2F..%2Fkey/unblinding.json",
        "/files/cases/%2e%2e/%2e%2e/key/unblinding.json",
        "/files/%2Fetc%2Fpasswd",
        "/files//etc/passwd",
        f"/files/cases/{case_id}/link.txt",
        "/files/key/unblinding.json",
    ):
        status = client.get(url).status_code
        assert status in (403, 404), url
    assert client.get("/files/cases/nothing.nii.gz").status_code == 404
    assert client.get("/static/niivue.umd.js").status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(root, port):
    proc = subprocess.Popen(
        [sys.executable, "-m", "gdsynth.cli.main", "-q", "reader-study", "serve", str(root),
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    end = time.monotonic() + 90
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def _post(port, token, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/r/{token}/answer", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())


def _location(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    res = conn.getresponse()
    res.read()
    conn.close()
    return res.status, res.getheader("Location")


def test_killed_server_loses_nothing(study):
    root, tokens = study
    token = tokens["bob"]
    order = _order(root, "bob")
    port = _free_port()
    proc = _start(root, port)
    try:
        _post(port, token, _answer(order[0], "synthetic", [(5.0, 6.0, 7.0)]))
        status, _ = _location(port, "/files/../key/unblinding.json")  # raw, not normalised
        assert status in (403, 404)
        status, _ = _location(port, "/files/cases/../../key/unblinding.json")
        assert status in (403, 404)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # a crash, not a clean shutdown
        proc.wait(timeout=10)
    proc = _start(root, port)
    try:
        status, location = _location(port, f"/r/{token}/")
        assert status == 303 and location.endswith("/case/2")  # resumes after the crash
        _post(port, token, _answer(order[1], "real"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    with sqlite3.connect(root / "answers.sqlite") as conn:
        rows = conn.execute("SELECT case_id, call FROM answers WHERE reader='bob'").fetchall()
    assert sorted(rows) == sorted([(order[0], "synthetic"), (order[1], "real")])


def test_access_log_redacts_tokens(study, caplog):
    """A token in a URL is a password: the server's log lines show ``/r/***/``, never it."""
    import logging
    import threading

    from gdsynth.review.server import make_study_server, redact

    root, tokens = study
    token = tokens["alice"]
    assert redact(f"GET /r/{token}/case/2?token={token} HTTP/1.1") == \
        "GET /r/***/case/2?token=*** HTTP/1.1"
    caplog.set_level(logging.INFO)
    server = make_study_server(root, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_port
        assert _location(port, f"/r/{token}/")[0] in (200, 303)  # 200 once all are answered
        assert _location(port, f"/r/{token}/case/1?token={token}")[0] == 200
        assert _location(port, "/r/not-a-token/case/1")[0] == 403
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /r/***/ HTTP" in logged and "/r/***/case/1?token=***" in logged, logged
    assert token not in logged and token not in caplog.text
    assert "not-a-token" not in logged
