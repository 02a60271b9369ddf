"""Study creation (blinding, randomisation, tokens) and the SQLite answer store."""

from __future__ import annotations

import json
import logging
import sqlite3

import numpy as np
import pytest

from gdsynth.errors import ConfigError, OutputError
from gdsynth.io import Geometry, read_image
from gdsynth.review.store import Answer, AnswerStore
from gdsynth.review.study import create_study, token_hash
from tests.fixtures.review import LESIONS, RAS, SHAPE, make_cohort


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort3")
    return make_cohort(root, subjects=("01", "02", "03"), with_real=("01", "02"))


def test_create_is_blinded_and_balanced(three, tmp_path, caplog):
    bids, pred = three
    study = tmp_path / "study"
    with caplog.at_level(logging.WARNING):
        tokens = create_study(pred, bids, study, readers=["alice", "bob"], seed=3, reference=pred)
    assert "sub-03" in caplog.text  # no real post: skipped with a warning
    key = json.loads((study / "key" / "unblinding.json").read_text())["cases"]
    assert sorted(k["kind"] for k in key.values()) == ["real", "real", "synthetic", "synthetic"]
    assert sorted({k["exam"] for k in key.values()}) == ["sub-01", "sub-02"]
    readers = json.loads((study / "readers.json").read_text())
    for name in ("alice", "bob"):
        assert sorted(readers[name]["order"]) == sorted(key)
        assert readers[name]["token_sha256"] == token_hash(tokens[name])
    public = study / "public"
    for f in public.rglob("*"):
        assert "sub-0" not in str(f.relative_to(study))
        if f.suffix == ".json":
            text = f.read_text()
            assert "sub-0" not in text and "real" not in text and "synthetic" not in text
    for f in study.rglob("*"):  # tokens are never stored in clear
        if f.is_file():
            data = f.read_bytes()
            assert all(t.encode() not in data for t in tokens.values())
    posts = [read_image(public / "cases" / c / "post.nii.gz") for c in key]
    grid = Geometry(SHAPE, (2.0, 2.0, 2.0), (38.0, 46.0, -30.0), RAS)
    for array, geometry in posts:  # same grid and intensity scale: nothing but content differs
        assert geometry.same_grid(grid)
        assert np.percentile(array[array > 0], 99) == pytest.approx(1000, rel=0.02)
    refs = next(iter(key.values()))["reference_lesions"]
    expected = [grid.index_to_world(np.array(les[:3], float), ras=True) for les in LESIONS]
    np.testing.assert_allclose([r["centre"] for r in refs], expected, atol=1e-3)
    with pytest.raises(OutputError):
        create_study(pred, bids, study, readers=["carol"])
    with pytest.raises(ConfigError):
        create_study(pred, bids, tmp_path / "other", readers=["ok", "../x"])


def test_one_case_per_exam_alternates_kinds(three, tmp_path):
    bids, pred = three
    create_study(pred, bids, tmp_path / "s", readers=["a"], seed=1, cases_per_exam=1)
    key = json.loads((tmp_path / "s" / "key" / "unblinding.json").read_text())["cases"]
    assert sorted(k["kind"] for k in key.values()) == ["real", "synthetic"]
    assert len({k["exam"] for k in key.values()}) == 2


def test_store_upserts_one_answer_per_reader_and_case(tmp_path):
    store = AnswerStore(tmp_path / "answers.sqlite")
    store.save(Answer("alice", "c1", "real", 4, 3, [[1.0, 2.0, 3.0]], 12.5))
    store.save(Answer("alice", "c1", "synthetic", 2, 5, [], 3.0))
    store.save(Answer("bob", "c1", "real", 3, 3))
    again = AnswerStore(tmp_path / "answers.sqlite")  # reopened: nothing lost
    assert [(a.reader, a.call, a.quality) for a in again.answers()] == [
        ("alice", "synthetic", 2), ("bob", "real", 3)]
    with sqlite3.connect(tmp_path / "answers.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT revisions FROM answers WHERE reader='alice'").fetchone()[0] == 1
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO answers VALUES ('bob','c1','real',3,3,'[]',0,0,0,0)")
    with pytest.raises(sqlite3.IntegrityError):
        store.save(Answer("bob", "c2", "maybe", 3, 3))


def test_real_post_is_registered_to_the_t1w(tmp_path):
    from gdsynth.io import write_image

    bids, pred = make_cohort(tmp_path, subjects=("01",))
    real = bids / "sub-01" / "anat" / "sub-01_ce-gadolinium_T1w.nii.gz"
    array, geometry = read_image(real)
    moved = geometry.replace(origin=(geometry.origin[0] + 4.0, geometry.origin[1] - 2.0,
                                     geometry.origin[2]))
    write_image(real, array, moved)  # the patient moved 4 mm between pre and post scans

    def real_case(study):
        key = json.loads((study / "key" / "unblinding.json").read_text())["cases"]
        case = next(c for c, k in key.items() if k["kind"] == "real")
        return read_image(study / "public" / "cases" / case / "post.nii.gz")[0]

    create_study(pred, bids, tmp_path / "reg", readers=["a"], seed=1)
    create_study(pred, bids, tmp_path / "raw", readers=["a"], seed=1, register=False)
    brain = array > 0.3 * array.max()
    err_reg = np.abs(real_case(tmp_path / "reg") / 1000 - array / np.percentile(array[array > 0], 99))
    err_raw = np.abs(real_case(tmp_path / "raw") / 1000 - array / np.percentile(array[array > 0], 99))
    assert err_reg[brain].mean() < 0.5 * err_raw[brain].mean()
