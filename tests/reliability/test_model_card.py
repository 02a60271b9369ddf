"""A hostile or corrupted model_card.json (issue #17.7): every field is checked against the card's
schema when the model is loaded, so ``predict`` refuses it at once with one line naming
``model_card.json`` and the field, before any exam is read or any map written."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from gdsynth.models.card import SCHEMA, ModelCard
from tests.reliability.common import SEQUENCES, run_cli, traceback_free, tree_hashes

# name: (change to the card: dotted key -> value, fragment of the error)
CASES = {
    "residual-string-false": ({"residual": "false"}, "residual='false' must be a bool"),
    "residual-number": ({"residual": 0}, "must be a bool"),
    "spacing-string": ({"spacing_mm": "abc"}, "spacing_mm='abc' must be a number"),
    "spacing-0.1-mm": ({"spacing_mm": 0.1}, "spacing_mm=0.1 out of bounds"),
    "spacing-1e6-mm": ({"spacing_mm": 1e6}, "out of bounds"),
    "spacing-nan": ({"spacing_mm": math.nan}, "spacing_mm is nan"),
    "spacing-bool": ({"spacing_mm": True}, "must be a number or null, not a bool"),
    "context-float": ({"context_slices": 1.5}, "context_slices=1.5 must be an integer"),
    "heads-not-list": ({"heads": "enhancing"}, "heads='enhancing' must be a list"),
    "inputs-numbers": ({"inputs": [1, 2]}, "items must be strings"),
    "architecture-list": ({"architecture": []}, "architecture=[] must be a JSON object"),
    "nested-nan": ({"training": {"lr": math.inf}}, "training.lr is NaN or infinite"),
    "unknown-field": ({"residuals": True}, "unknown model card fields"),
    "refer-threshold-string": ({"detection.refer_threshold": "0.5"},
                               "refer_threshold='0.5' must be a finite number"),
    "refer-threshold-nan": ({"detection.refer_threshold": math.nan}, "NaN or infinite"),
    "detection-bool-number": ({"detection.high": True}, "high=True must be a finite number"),
    "detection-unknown-key": ({"detection.refer_treshold": 0.5}, "unknown detection parameters"),
    "detection-shell-string": ({"detection.nawm_shell_mm": "3,10"}, "two finite numbers"),
}


def test_schema_covers_every_card_field():
    from dataclasses import fields

    assert set(SCHEMA) == {f.name for f in fields(ModelCard)}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_model_card_refused_naming_it(case, zero_model, phantom4, tmp_path):
    change, fragment = CASES[case]
    model = tmp_path / "model"
    shutil.copytree(zero_model, model)
    card_path = model / "model_card.json"
    card = json.loads(card_path.read_text())
    for key, value in change.items():
        section, _, sub = key.partition(".")
        if sub:
            card[section][sub] = value
        else:
            card[section] = value
    card_path.write_text(json.dumps(card))  # NaN written as JSON's non-standard NaN, as Python does
    before = tree_hashes(model)
    anat = phantom4 / "sub-001" / "anat"
    out = tmp_path / "out"
    result = run_cli(["-q", "predict", *[a for s in SEQUENCES for a in
                                         (f"--{s.lower()}", str(anat / f"sub-001_{s}.nii.gz"))],
                      "--subject", "01", "-m", str(model), "-o", str(out), "--device", "cpu"])
    assert result.code != 0 and traceback_free(result.stderr), result.stderr
    lines = [ln for ln in result.stderr.splitlines() if fragment in ln]
    assert len(lines) == 1 and str(card_path) in lines[0], result.stderr
    assert tree_hashes(model) == before
    assert not out.exists() or not any(p.suffix in (".gz", ".json") and "sub-01" in p.name
                                       for p in Path(out).rglob("*"))
