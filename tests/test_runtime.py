"""Run-time choices: the precision option (auto | bf16 | fp32) and how it resolves."""

from __future__ import annotations

import pytest
import torch

from gdsynth.errors import ConfigError
from gdsynth.runtime import Precision, cpu_has_bf16, lightning_precision, resolve_precision


def test_precision_parse_accepts_choices_and_lightning_spellings():
    assert [Precision.parse(v) for v in ("auto", "BF16", "fp32")] == list(Precision)
    assert Precision.parse("32-true") is Precision.fp32
    assert Precision.parse("bf16-mixed") is Precision.bf16
    with pytest.raises(ConfigError, match="auto, bf16, fp32"):
        Precision.parse("fp8")


def test_resolve_precision_auto_follows_the_cpu(monkeypatch):
    assert resolve_precision("bf16", "cpu") is Precision.bf16  # explicit: kept (emulated if need be)
    assert resolve_precision("fp32", "cpu") is Precision.fp32
    want = Precision.bf16 if cpu_has_bf16() else Precision.fp32
    assert resolve_precision("auto", torch.device("cpu")) is want
    for native in (True, False):
        monkeypatch.setattr("gdsynth.runtime.cpu_has_bf16", lambda native=native: native)
        assert resolve_precision(Precision.auto, "cpu") is (Precision.bf16 if native
                                                           else Precision.fp32)


def test_lightning_precision():
    assert lightning_precision(Precision.bf16) == "bf16-mixed"
    assert lightning_precision(Precision.fp32) == "32-true"
    with pytest.raises(ValueError, match="resolve"):
        lightning_precision(Precision.auto)


@pytest.mark.parametrize("command", ["train", "synthesize", "predict"])
def test_precision_option_on_the_commands(command):
    from typer.testing import CliRunner

    from gdsynth.cli.main import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--precision" in result.output
    if command != "train":
        bad = CliRunner().invoke(app, [command, "--precision", "fp8", "--model", "phantom",
                                       "-o", "x", "--t1w", "a"])
        assert bad.exit_code != 0 and "fp8" in bad.output
