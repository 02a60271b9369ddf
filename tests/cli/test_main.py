"""The console script: fast help, one-line errors, non-zero exit codes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from gdsynth.cli.main import main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("phantom", "prepare", "train", "synthesize", "detect", "predict", "evaluate",
                    "review", "reader-study", "demo", "explain", "label"):
        assert command in out


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, time; t = time.perf_counter();"
        "from gdsynth.cli.main import app;"
        "heavy = [m for m in ('torch', 'SimpleITK', 'pytorch_lightning', 'torchio') if m in sys.modules];"
        "print(heavy, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8",
                         check=True)
    heavy, seconds = out.stdout.rsplit(" ", 1)
    assert heavy == "[]", f"--help imports heavy modules: {heavy}"
    assert float(seconds) < 1.0
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gdsynth.cli.main", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - t < 5.0  # generous: interpreter start on a loaded machine


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "gdsynth" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["no-such-command"]) != 0


def test_known_error_is_one_line_without_traceback(tmp_path, capsys):
    code = main(["prepare", str(tmp_path / "missing_dataset")])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    assert "missing_dataset" in err


@pytest.mark.parametrize("flag", ["--verbose"])
def test_verbose_shows_traceback(tmp_path, capsys, flag):
    code = main([flag, "prepare", str(tmp_path / "missing_dataset")])
    assert code != 0
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["evaluate"], "Missing argument 'PRED'"),
    (["evaluate", "x", "--bogus"], "No such option: --bogus"),
    (["predict", "x", "--mc-samples", "many"], "Invalid value for '--mc-samples'"),
])
def test_usage_errors_exit_2_with_usage(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Usage: gdsynth" in err and "Traceback" not in err


def test_participant_label_bids_apps_form_is_expanded(tmp_path):
    from gdsynth.cli._common import expand_multi_value

    folder = tmp_path / "bids"
    folder.mkdir()
    assert expand_multi_value(["predict", "--participant-label", "01", "sub-02", "03", "-o", "x"]) == [
        "predict", "--participant-label", "01", "--participant-label", "sub-02",
        "--participant-label", "03", "-o", "x"]
    # a positional folder after the labels is not taken for a label; "--" ends the expansion
    assert expand_multi_value(["--participant-label", "01", str(folder)]) == [
        "--participant-label", "01", str(folder)]
    assert expand_multi_value(["--participant-label", "01", "--", "02"]) == [
        "--participant-label", "01", "--", "02"]


def test_bad_tracker_fails_before_any_exam_or_folder(tmp_path, capsys):
    """#20: a bad --tracker was reported after preparing exams, leaving an empty run folder."""
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "bids"), "-o", str(run), "--tracker", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "tracker" in err and "wandb" in err and "bogus" in err
    assert not run.exists()
