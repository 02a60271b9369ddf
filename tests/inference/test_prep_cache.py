"""`gdsynth predict` reuses a valid preparation cache instead of preparing an exam again.

On a tiny real phantom (one 2 mm subject, real preparation: registration, mask, N4, NAWM):
``--prep DIR`` prepares once and caches; a second predict reads the cache back (the preparation
is not called) with identical outputs, identical also to a run without any cache; an entry that
``gdsynth prepare`` wrote in ``BIDS/derivatives/gdsynth-prep`` is reused without writing to the
dataset; a cache entry with other parameters is left alone.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gdsynth import preprocess
from gdsynth.cli.main import main
from gdsynth.io import read_image, read_tsv
from gdsynth.io.bids import discover
from gdsynth.preprocess import exam as prep_exam
from gdsynth.preprocess.exam import output_path
from tests.fixtures.inference import make_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from gdsynth.phantom import generate_dataset

    root = tmp_path_factory.mktemp("phantom") / "bids"
    generate_dataset(root, subjects=1, seed=3, resolution=2)
    return root


@pytest.fixture()
def calls(monkeypatch):
    """Counts every call of the preparation (``prepare_arrays``), whoever makes it."""
    made: list[str] = []
    real = preprocess.prepare_arrays

    def counting(exam, config=preprocess.PrepConfig(), **kwargs):
        made.append(exam.prefix)
        return real(exam, config, **kwargs)

    monkeypatch.setattr(preprocess, "prepare_arrays", counting)
    monkeypatch.setattr(prep_exam, "prepare_arrays", counting)
    return made


def outputs(out):
    """Every output of a predict run: image arrays, tables, summary fields without timings."""
    found = {}
    for path in sorted(out.rglob("sub-*")):
        if path.name.endswith(".nii.gz"):
            array, geometry = read_image(path, allow_constant=True)
            found[path.name] = (array, geometry)
        elif path.name.endswith(".tsv"):
            found[path.name] = read_tsv(path)
        elif path.name.endswith(".json"):
            data = json.loads(path.read_text())
            found[path.name] = {k: v for k, v in data.items() if "time" not in k and "second" not in k}
    return found


def assert_same(a, b):
    assert a.keys() == b.keys() and len(a) >= 5
    for name, value in a.items():
        if isinstance(value, tuple):
            np.testing.assert_array_equal(value[0], b[name][0], err_msg=name)
            assert value[1] == b[name][1], name
        else:
            assert value == b[name], name


def test_predict_reuses_the_preparation_cache(phantom, tmp_path, calls, capsys):
    model = make_model(tmp_path / "model")
    exam = discover(phantom)[0]
    cache = tmp_path / "prep"
    base = ["predict", str(phantom), "-m", str(model), "--device", "cpu"]

    assert main([*base, "-o", str(tmp_path / "out1"), "--prep", str(cache)]) == 0
    assert calls == [exam.prefix]
    assert output_path(cache, exam, "provenance").is_file()
    assert "1 prepared and cached there" in capsys.readouterr().err

    # second run: the cache is valid (same inputs, same parameters): no preparation at all
    assert main([*base, "-o", str(tmp_path / "out2"), "--prep", str(cache)]) == 0
    assert calls == [exam.prefix]
    err = capsys.readouterr().err
    assert "preparation reused from the cache" in err and "1 exam(s) reused" in err
    first = outputs(tmp_path / "out1")
    assert_same(first, outputs(tmp_path / "out2"))

    # a run without any cache prepares in memory and gives the same outputs
    assert main([*base, "-o", str(tmp_path / "out3")]) == 0
    assert calls == [exam.prefix] * 2
    assert_same(first, outputs(tmp_path / "out3"))

    # a cache entry prepared with other parameters is neither used nor overwritten
    prov = output_path(cache, exam, "provenance")
    data = json.loads(prov.read_text())
    data["parameters"]["spacing"], data["cache_key"] = 3.0, "0" * 64  # as if prepared at 3 mm
    prov.write_text(json.dumps(data))
    before = prov.read_bytes()
    assert main([*base, "-o", str(tmp_path / "out4"), "--prep", str(cache)]) == 0
    assert calls == [exam.prefix] * 3
    assert "other parameters: spacing=3.0" in capsys.readouterr().err
    assert prov.read_bytes() == before


def test_predict_reuses_gdsynth_prepare_without_writing_the_dataset(phantom, tmp_path, calls,
                                                                      capsys):
    from tests.reliability.common import tree_hashes

    model = make_model(tmp_path / "model")
    exam = discover(phantom)[0]
    assert main(["-q", "prepare", str(phantom)]) == 0  # BIDS/derivatives/gdsynth-prep
    assert calls == [exam.prefix]
    before = tree_hashes(phantom)
    assert main(["predict", str(phantom), "-m", str(model), "--device", "cpu",
                 "-o", str(tmp_path / "out")]) == 0
    assert calls == [exam.prefix]  # read back, not prepared again
    assert "preparation reused from the cache" in capsys.readouterr().err
    assert tree_hashes(phantom) == before  # the default cache is only read
    assert main(["-q", "predict", str(phantom), "-m", str(model), "--device", "cpu",
                 "-o", str(tmp_path / "fresh"), "--prep", str(tmp_path / "empty")]) == 0
    assert_same(outputs(tmp_path / "out"), outputs(tmp_path / "fresh"))
