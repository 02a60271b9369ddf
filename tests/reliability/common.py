"""Shared helpers for the reliability batteries: models, coarse phantom exams, CLI runs, hashes.

Everything is tiny: a 2 mm phantom (3 subjects) is generated once per session; the bad-input and
inference-fault batteries use a 4 mm copy of it (a quarter of the voxels: the real preparation,
with registration and N4, then takes a few seconds per exam on two cores).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gdsynth.io import Geometry, read_image, write_image
from gdsynth.io.bids import Exam, discover
from gdsynth.models.card import ModelCard
from gdsynth.models.folder import save_model_folder
from gdsynth.models.unet import UNetGenerator

REPO = Path(__file__).resolve().parents[2]
TINY_RECIPE = REPO / "experiments" / "tiny.yaml"
PHANTOM_SEED = 11
SEQUENCES = ("T1w", "T2w", "FLAIR")


def make_model(folder: Path, *, zero: bool = False, seed: int = 0) -> Path:
    """Export a tiny 2.5D U-Net (depth 2, 4 features, no heads) with its card.

    ``zero``: every weight and bias is 0, so the generator predicts no enhancement at all (post =
    pre); detection then finds nothing on a good brain, and any referral comes from the quality
    checks: the sharpest test that a bad image is never reported as "no active lesion".
    """
    kwargs = {"in_channels": 9, "spatial_dims": 2, "features": 4, "depth": 2, "dropout": 0.5,
              "heads": [], "max_features": 8}
    torch.manual_seed(seed)
    gen = UNetGenerator(**kwargs)
    if zero:
        with torch.no_grad():
            for p in gen.parameters():
                p.zero_()
    card = ModelCard(architecture={"name": "unet", "kwargs": kwargs}, mode="2.5d",
                     context_slices=1, heads=[], name="reliability-zero" if zero else "reliability")
    return save_model_folder(folder, gen, card)


def coarse_grid(geometry: Geometry, factor: int = 2) -> Geometry:
    """``geometry`` with voxels ``factor`` times larger, covering the same field of view."""
    spacing = tuple(s * factor for s in geometry.spacing)
    shape = tuple(max(1, n // factor) for n in geometry.shape)
    shift = (np.asarray(spacing) - np.asarray(geometry.spacing)) / 2
    origin = np.asarray(geometry.origin) + geometry.direction_matrix @ shift
    return geometry.replace(shape=shape, spacing=spacing, origin=tuple(float(v) for v in origin))


def write_coarse_copy(src_root: Path, dst_root: Path, factor: int = 2) -> list[Exam]:
    """Copy a phantom BIDS dataset's raw images at ``factor`` × coarser voxels (linear resampling);
    returns the new exams."""
    from gdsynth.preprocess.resample import resample

    for exam in discover(src_root):
        for seq in (*SEQUENCES, "T1w_gd"):
            path = exam.path(seq)
            if path is None:
                continue
            array, geometry = read_image(path)
            target = coarse_grid(geometry, factor)
            write_image(dst_root / path.relative_to(src_root), resample(array, geometry, target),
                        target)
    return discover(dst_root)


def tree_hashes(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (a file root: itself), keyed by path."""
    out: dict[str, str] = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@dataclass
class CliResult:
    """Exit code and captured text of one in-process ``gdsynth`` run."""

    code: int
    stdout: str
    stderr: str


def run_cli(args: Sequence[str]) -> CliResult:
    """Run ``gdsynth ARGS`` in this process (``gdsynth.cli.main.main``), capturing its output."""
    from gdsynth.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return CliResult(code, out.getvalue(), err.getvalue())


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment of a child ``gdsynth`` process: one thread, no network, repo importable."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", WANDB_MODE="offline",
               WANDB_SILENT="true", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                                            env.get("PYTHONPATH")])))
    env.update(extra)
    return env


def child(args: Sequence[str], *, fault: str | None = None, **popen) -> subprocess.Popen:
    """Start ``gdsynth ARGS`` in a child process, optionally with a fault injected
    (see :mod:`tests.reliability.faulty`)."""
    cmd = [sys.executable, "-m", "tests.reliability.faulty", fault or "none", *args]
    popen.setdefault("env", subprocess_env())
    return subprocess.Popen(cmd, cwd=REPO, **popen)


def traceback_free(text: str) -> bool:
    """True when ``text`` holds no Python traceback."""
    return "Traceback (most recent call last)" not in text
