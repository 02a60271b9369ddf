"""Training faults: killed mid-epoch, killed while writing a checkpoint, corrupt and malicious
checkpoints. The previous checkpoint always loads, and the resumed run equals an uninterrupted one
bit for bit on CPU; untrusted files are refused without executing anything.

Recipe: experiments/tiny.yaml with 6 steps (3 epochs of 2 batches) and the preparation without N4
(a few seconds per exam), on the 2 mm phantom (2 training exams, 1 validation exam).
"""

from __future__ import annotations

import pickle
import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from gdsynth.models.card import WEIGHTS_NAME
from tests.reliability.common import TINY_RECIPE, child, run_cli, traceback_free, tree_hashes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

STEPS = 6  # 3 epochs of 2 batches: last.ckpt is written at the end of each epoch


class MarkerPayload:
    """A pickle payload that, when unpickled, creates a marker file (what an attacker's code
    would do first)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A file shaped like a Lightning checkpoint whose unpickling would run code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "epoch": 0, "global_step": 0, "payload": MarkerPayload(marker)},
               path)
    return path


@pytest.fixture(scope="module")
def setup(phantom2, tmp_path_factory) -> dict[str, Path]:
    """The recipe, a preparation cache shared by every run, and an uninterrupted reference run."""
    root = tmp_path_factory.mktemp("train")
    config = yaml.safe_load(TINY_RECIPE.read_text())
    config["trainer"]["max_steps"] = STEPS
    config["prep"] = {"n4": False}
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config))
    paths = {"bids": phantom2, "recipe": recipe, "prep": root / "prep", "reference": root / "ref"}
    before = tree_hashes(phantom2)
    result = run_cli(train_args(paths, paths["reference"]))
    assert result.code == 0, result.stderr
    assert tree_hashes(phantom2) == before  # training never modifies its inputs
    return paths


def train_args(paths: dict[str, Path], run: Path, *extra: str) -> list[str]:
    return ["-q", "train", str(paths["bids"]), "-o", str(run), "--config", str(paths["recipe"]),
            "--prep-dir", str(paths["prep"]), *extra]


def resume_args(paths: dict[str, Path], run: Path) -> list[str]:
    return ["-q", "train", str(paths["bids"]), "-o", str(run), "--resume", "--prep-dir",
            str(paths["prep"])]


def killed(args: list[str], fault: str, log: Path) -> int:
    """Run ``gdsynth ARGS`` in a child with ``fault``; return its exit status."""
    with open(log, "wb") as fh:
        proc = child(args, fault=fault, stdout=fh, stderr=fh)
        return proc.wait(timeout=300)


def assert_checkpoint_loads(path: Path, epochs_done: int) -> None:
    """``path`` loads with ``weights_only=True`` and is the state after ``epochs_done`` epochs."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["epoch"] == epochs_done - 1
    assert state["global_step"] == 2 * epochs_done  # 2 batches per epoch, one step each


def assert_same_model(run: Path, reference: Path) -> None:
    a = load_file(run / "model" / WEIGHTS_NAME)
    b = load_file(reference / "model" / WEIGHTS_NAME)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_kill_mid_epoch_then_resume_equals_uninterrupted(setup, tmp_path):
    run = tmp_path / "run"
    status = killed(train_args(setup, run), "kill-at-batch:3", tmp_path / "log")  # epoch 2, batch 2
    assert status == -signal.SIGKILL, (tmp_path / "log").read_text(errors="replace")
    assert not (run / "model").exists()
    assert_checkpoint_loads(run / "checkpoints" / "last.ckpt", epochs_done=1)
    result = run_cli(resume_args(setup, run))
    assert result.code == 0 and traceback_free(result.stderr), result.stderr
    assert_same_model(run, setup["reference"])


def test_kill_during_checkpoint_write_keeps_previous_checkpoint(setup, tmp_path):
    run = tmp_path / "run"
    status = killed(train_args(setup, run), "kill-in-checkpoint:last.ckpt:2", tmp_path / "log")
    assert status == -signal.SIGKILL, (tmp_path / "log").read_text(errors="replace")
    checkpoints = run / "checkpoints"
    partial = [p for p in checkpoints.iterdir() if p.name.startswith(".last.ckpt")]
    assert len(partial) == 1  # the interrupted write, under its temporary name only
    with pytest.raises(Exception):  # noqa: B017 - it is truncated: any load error will do
        torch.load(partial[0], weights_only=True)
    assert_checkpoint_loads(checkpoints / "last.ckpt", epochs_done=1)  # the previous one, intact
    result = run_cli(resume_args(setup, run))
    assert result.code == 0 and traceback_free(result.stderr), result.stderr
    assert_same_model(run, setup["reference"])


def _run_folder_with(setup: dict[str, Path], run: Path, checkpoint: bytes | None) -> Path:
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_bytes((setup["reference"] / "config.yaml").read_bytes())
    if checkpoint is not None:
        (run / "checkpoints" / "last.ckpt").write_bytes(checkpoint)
    return run / "checkpoints" / "last.ckpt"


@pytest.mark.parametrize("force_unsafe", [False, True], ids=["default", "TORCH_FORCE_NO_WEIGHTS_ONLY"])
def test_resume_refuses_malicious_checkpoint(setup, tmp_path, force_unsafe):
    """``--resume`` on a ``last.ckpt`` whose unpickling would run code: refused in one line,
    nothing executed, even when the environment asks torch to unpickle everything."""
    marker = tmp_path / "pwned"
    ckpt = _run_folder_with(setup, tmp_path / "run", None)
    malicious_checkpoint(ckpt, marker)
    log = tmp_path / "log"
    with open(log, "wb") as fh:
        proc = child(resume_args(setup, tmp_path / "run"), stdout=fh, stderr=fh,
                     **({"env": _unsafe_env()} if force_unsafe else {}))
        status = proc.wait(timeout=300)
    text = log.read_text(errors="replace")
    assert not marker.exists(), "the checkpoint's code ran"
    assert status != 0 and traceback_free(text), text
    lines = [ln for ln in text.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(ckpt) in lines[0], text


def _unsafe_env() -> dict[str, str]:
    from tests.reliability.common import subprocess_env

    return subprocess_env(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, None], ids=["empty", "garbage", "truncated"])
def test_resume_refuses_corrupt_checkpoint(setup, tmp_path, content):
    if content is None:
        good = (setup["reference"] / "checkpoints" / "last.ckpt").read_bytes()
        content = good[: len(good) // 3]
    ckpt = _run_folder_with(setup, tmp_path / "run", content)
    result = run_cli(resume_args(setup, tmp_path / "run"))
    assert result.code != 0 and traceback_free(result.stderr), result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(ckpt) in lines[0], result.stderr


@pytest.mark.parametrize("case", ["pickle-as-safetensors", "checkpoint-file", "checkpoint-folder",
                                  "truncated-safetensors", "card-unknown-architecture",
                                  "card-not-json", "card-bad-kwargs"])
def test_inference_refuses_untrusted_model(case, setup, phantom4, tmp_path):
    """Inference loads only safetensors + a JSON card: pickles, checkpoints and malformed cards
    are refused with one line naming the file, and nothing in them runs."""
    marker = tmp_path / "pwned"
    good = setup["reference"] / "model"
    model = tmp_path / "model"
    model.mkdir()
    card = (good / "model_card.json").read_text()
    weights = (good / WEIGHTS_NAME).read_bytes()
    culprit = model / WEIGHTS_NAME
    if case == "pickle-as-safetensors":
        malicious_checkpoint(model / WEIGHTS_NAME, marker)
    elif case == "checkpoint-file":
        model = culprit = malicious_checkpoint(tmp_path / "last.ckpt", marker)
    elif case == "checkpoint-folder":  # a folder holding only a (malicious) checkpoint
        malicious_checkpoint(model / "last.ckpt", marker)
        culprit = model / "model_card.json"
    elif case == "truncated-safetensors":
        (model / WEIGHTS_NAME).write_bytes(weights[: len(weights) // 2])
    else:
        (model / WEIGHTS_NAME).write_bytes(weights)
        culprit = model / "model_card.json"
        if case == "card-unknown-architecture":
            card = card.replace('"name": "unet"', '"name": "__import__(\'os\').system"')
        elif case == "card-not-json":
            card = pickle.dumps(MarkerPayload(marker)).decode("latin-1")
        else:
            card = card.replace('"features": 8', '"features": 8, "evil": 1')
    if case not in ("pickle-as-safetensors", "checkpoint-file", "checkpoint-folder"):
        (model / "model_card.json").write_text(card, encoding="utf-8")
    elif case == "pickle-as-safetensors":
        (model / "model_card.json").write_text(card, encoding="utf-8")
    anat = phantom4 / "sub-001" / "anat"
    result = run_cli(["-q", "predict", "--t1w", str(anat / "sub-001_T1w.nii.gz"),
                      "--t2w", str(anat / "sub-001_T2w.nii.gz"), "--flair",
                      str(anat / "sub-001_FLAIR.nii.gz"), "-m", str(model), "-o",
                      str(tmp_path / "out"), "--device", "cpu"])
    assert not marker.exists(), "the model file's code ran"
    assert result.code != 0 and traceback_free(result.stderr), result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(culprit) in lines[0], result.stderr
    assert not list((tmp_path / "out").rglob("*.nii.gz")) if (tmp_path / "out").exists() else True
