"""The review site and the reader-study server against hostile folders and requests
(issue #17.4, #17.8): no permission change outside the site, bounded answer values (400, never
500), and damaged study files named in one line."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from gdsynth.errors import GdsynthError, OutputError
from gdsynth.review.server import create_app
from gdsynth.review.site import build_site
from gdsynth.review.store import AnswerStore
from gdsynth.review.study import create_study
from tests.fixtures.review import make_cohort

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("review-cohort"), subjects=("01",))


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode) if path.is_symlink() else stat.S_IMODE(path.stat().st_mode)


def test_site_rebuild_changes_no_permission_outside(cohort, tmp_path):
    bids, pred = cohort
    site = tmp_path / "site"
    build_site(pred, bids, site)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("private")
    secret_file.chmod(0o600)
    secret_dir = tmp_path / "private"
    secret_dir.mkdir()
    (secret_dir / "inner.txt").write_text("x")
    (secret_dir / "inner.txt").chmod(0o600)
    secret_dir.chmod(0o700)
    (site / "link-to-file").symlink_to(secret_file)
    (site / "static" / "link-to-dir").symlink_to(secret_dir, target_is_directory=True)
    build_site(pred, bids, site)  # a rerun over a site holding links
    assert _mode(secret_file) == 0o600
    assert _mode(secret_dir) == 0o700 and _mode(secret_dir / "inner.txt") == 0o600
    assert _mode(site / "index.html") == 0o644 and _mode(site / "data") == 0o755


@pytest.mark.parametrize("sub", ["data", "static"])
def test_site_folder_as_symlink_refused_naming_it(cohort, tmp_path, sub):
    bids, pred = cohort
    site = tmp_path / "site"
    build_site(pred, bids, site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("kept")
    shutil.rmtree(site / sub)
    (site / sub).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputError) as info:
        build_site(pred, bids, site)
    assert str(site / sub) in str(info.value) and "symbolic link" in str(info.value)
    assert (elsewhere / "keep.txt").read_text() == "kept" and len(list(elsewhere.iterdir())) == 1


@pytest.fixture(scope="module")
def study(cohort, tmp_path_factory):
    bids, pred = cohort
    root = tmp_path_factory.mktemp("study") / "study"
    tokens = create_study(pred, bids, root, readers=["alice"], seed=3, reference=pred,
                          register=False)
    return root, tokens


def _body(case_id: str, **raw: str) -> str:
    """An answer as raw JSON text (values written as given: NaN, 10**400...)."""
    fields = {"case_id": json.dumps(case_id), "call": '"real"', "quality": "4", "confidence": "3",
              "lesions": "[]", "seconds": "3", **raw}
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


BAD_SECONDS = {"huge-int": "1" + "0" * 400, "nan": "NaN", "infinity": "Infinity",
               "minus-infinity": "-Infinity", "negative": "-5", "string": '"10"',
               "bool": "true", "more-than-a-day": "86401", "list": "[10]"}


@pytest.mark.parametrize("case", list(BAD_SECONDS))
def test_answer_seconds_validated(study, case):
    root, tokens = study
    token = tokens["alice"]
    order = json.loads((root / "readers.json").read_text())["alice"]["order"]
    body = _body(order[0], seconds=BAD_SECONDS[case])
    client = create_app(root).test_client()
    reply = client.post(f"/r/{token}/answer", data=body, content_type="application/json")
    assert reply.status_code == 400, reply.data
    assert AnswerStore(root / "answers.sqlite").answers() == []


@pytest.mark.parametrize("field", ["quality", "lesions"])
def test_other_answer_numbers_validated(study, field):
    root, tokens = study
    token = tokens["alice"]
    order = json.loads((root / "readers.json").read_text())["alice"]["order"]
    huge = "1" + "0" * 400
    body = _body(order[0], **{field: huge if field == "quality" else f"[[1, 2, {huge}]]"})
    reply = create_app(root).test_client().post(f"/r/{token}/answer", data=body,
                                                content_type="application/json")
    assert reply.status_code == 400


def test_valid_answer_still_stored(study):
    root, tokens = study
    order = json.loads((root / "readers.json").read_text())["alice"]["order"]
    reply = create_app(root).test_client().post(
        f"/r/{tokens['alice']}/answer",
        json={"case_id": order[0], "call": "real", "quality": 4, "confidence": 3,
              "lesions": [[1.5, 2, -3]], "seconds": 12})
    assert reply.status_code == 200
    assert [a.seconds for a in AnswerStore(root / "answers.sqlite").answers()] == [12.0]


CORRUPT = {
    "readers.json": {"not-json": b"{not json", "not-utf8": b"\xff\xfe\x00",
                     "wrong-shape": b'{"alice": {"order": "abc"}}', "empty": b"{}"},
    "answers.sqlite": {"garbage": b"this is not a database" * 200,
                       "truncated-header": b"SQLite format 3\x00" + b"\x00" * 50},
}


@pytest.mark.parametrize(("name", "kind"), [(n, k) for n, kinds in CORRUPT.items() for k in kinds])
def test_corrupt_study_file_named(study, tmp_path, name, kind):
    root, _ = study
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    (copy / name).write_bytes(CORRUPT[name][kind])
    for extra in ("answers.sqlite-wal", "answers.sqlite-shm"):
        (copy / extra).unlink(missing_ok=True)
    with pytest.raises(GdsynthError) as info:
        create_app(copy)
    assert str(copy / name) in str(info.value) and "\n" not in str(info.value)
