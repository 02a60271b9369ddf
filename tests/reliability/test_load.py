"""Load: 104 exams through two concurrent shard processes; the reader-study server under 20
concurrent readers (the real server, in its own process, on 127.0.0.1)."""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from gdsynth.inference import outputs as O
from gdsynth.io import read_tsv, write_json
from gdsynth.io.bids import discover
from gdsynth.review.study import PUBLIC, token_hash
from tests.reliability.common import child, traceback_free, tree_hashes

pytestmark = pytest.mark.slow

N_EXAMS = 104
N_READERS, N_CASES = 20, 50  # 1000 answers


def replicate(src: Path, dst: Path, n: int) -> Path:
    """A BIDS dataset of ``n`` exams made by copying the raw images of ``src``'s subjects in turn
    (copies, not links: every exam is its own set of files)."""
    subjects = sorted(p for p in src.glob("sub-*") if p.is_dir())
    for i in range(n):
        sub = subjects[i % len(subjects)]
        label = f"sub-{i + 1:03d}"
        anat = dst / label / "anat"
        anat.mkdir(parents=True)
        for f in sorted((sub / "anat").glob("*.nii.gz")):
            shutil.copyfile(f, anat / f.name.replace(sub.name, label))
    return dst


def test_two_concurrent_shards_do_every_exam_once(phantom4, random_model, tmp_path):
    """104 exams (4 mm) predicted by ``--shard 0/2`` and ``--shard 1/2`` at the same time, into one
    output folder. Inference uses the light preparation (tests/reliability/prep.py): the point is
    concurrency and completeness, not preprocessing."""
    bids = replicate(phantom4, tmp_path / "bids", N_EXAMS)
    before = tree_hashes(bids)
    out = tmp_path / "out"
    logs = [tmp_path / f"shard{i}.log" for i in range(2)]
    procs = []
    start = time.monotonic()
    for i, log in enumerate(logs):
        with open(log, "wb") as fh:
            procs.append(child(["-q", "predict", str(bids), "-m", str(random_model), "-o", str(out),
                                "--device", "cpu", "--shard", f"{i}/2"], fault="simple-prep",
                               stdout=fh, stderr=fh))
    codes = [p.wait(timeout=580) for p in procs]
    elapsed = time.monotonic() - start
    texts = [log.read_text(errors="replace") for log in logs]
    assert codes == [0, 0], texts
    assert all(traceback_free(t) for t in texts)
    rows = [r for i in range(2) for r in read_tsv(out / f"run_summary_shard-{i}-of-2.tsv")]
    exams = discover(bids)
    assert len(exams) == N_EXAMS
    assert sorted(r["exam"] for r in rows) == sorted(e.id for e in exams)  # each exactly once
    assert {r["status"] for r in rows} == {"done"} and all(r["error"] in ("", "n/a") for r in rows)
    for exam in exams:
        summary = json.loads(O.SUMMARY.path(out, exam).read_text())
        assert summary["exam"] == exam.id and "refer_for_gadolinium" in summary
    assert tree_hashes(bids) == before
    print(f"\n{N_EXAMS} exams in 2 concurrent shards: {elapsed:.0f} s "
          f"({2 * elapsed / N_EXAMS:.2f} s per exam per process)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_study(root: Path) -> dict[str, str]:
    """A study folder with 20 readers of 50 cases each (what the server reads: readers.json and
    public/); returns reader → token."""
    (root / PUBLIC / "cases").mkdir(parents=True)
    tokens = {f"reader{r:02d}": secrets.token_urlsafe(16) for r in range(N_READERS)}
    cases = [f"c{c:03d}" for c in range(N_CASES)]
    rng = np.random.default_rng(0)
    write_json(root / "readers.json", {
        name: {"token_sha256": token_hash(token), "order": [cases[i] for i in rng.permutation(N_CASES)]}
        for name, token in tokens.items()})
    return tokens


def wait_for_port(port: int, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("server did not start")


def post(url: str, payload: dict) -> tuple[int, float]:
    data = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.perf_counter() - start


def answer(reader: str, case: str) -> dict:
    """A deterministic answer of ``reader`` for ``case`` (so the stored row can be checked)."""
    n = int(reader[-2:]) * 1000 + int(case[1:])
    return {"case_id": case, "call": "real" if n % 2 else "synthetic", "quality": 1 + n % 5,
            "confidence": 1 + (n // 5) % 5, "lesions": [[float(n % 7), 1.5, -2.0]],
            "seconds": float(n % 60)}


def test_reader_study_server_under_20_concurrent_readers(tmp_path):
    study = tmp_path / "study"
    tokens = make_study(study)
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as fh:
        server = child(["reader-study", "serve", str(study), "--port", str(port)], stdout=fh,
                       stderr=fh)
    try:
        wait_for_port(port, server)
        orders = json.loads((study / "readers.json").read_text())
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()

        def read_all(name: str) -> None:
            url = f"http://127.0.0.1:{port}/r/{tokens[name]}/answer"
            for case in orders[name]["order"]:  # bounded: 50 requests per reader
                status, seconds = post(url, answer(name, case))
                with lock:
                    latencies.append(seconds)
                    if status != 200:
                        failures.append(f"{name} {case}: HTTP {status}")

        threads = [threading.Thread(target=read_all, args=(n,)) for n in tokens]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        elapsed = time.monotonic() - start
        assert not any(t.is_alive() for t in threads)
        status, _ = post(f"http://127.0.0.1:{port}/r/not-a-token/answer", answer("reader00", "c000"))
        assert status == 403
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except Exception:  # noqa: BLE001 - make sure it is gone
            server.kill()
    assert not failures, failures[:5]
    assert len(latencies) == N_READERS * N_CASES
    with sqlite3.connect(study / "answers.sqlite") as conn:
        rows = conn.execute("SELECT reader, case_id, call, quality, confidence, lesions, seconds, "
                            "revisions FROM answers").fetchall()
    assert len(rows) == N_READERS * N_CASES  # every answer stored, none lost
    assert len({(r[0], r[1]) for r in rows}) == len(rows)  # ... and stored once
    for reader, case, call, quality, confidence, lesions, seconds, revisions in rows:
        sent = answer(reader, case)
        assert (call, quality, confidence, json.loads(lesions), seconds, revisions) == (
            sent["call"], sent["quality"], sent["confidence"], sent["lesions"], sent["seconds"], 0)
    p50, p95 = np.percentile(latencies, [50, 95]) * 1000
    print(f"\nreader study: {len(rows)} answers from {N_READERS} concurrent readers in "
          f"{elapsed:.1f} s; latency p50 {p50:.0f} ms, p95 {p95:.0f} ms")
