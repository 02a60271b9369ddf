"""Run ``gdsynth`` in a child process with one fault injected: ``python -m tests.reliability.faulty
FAULT ARGS...``.

Faults (the process kills itself with SIGKILL, as the OOM killer or a power cut would: no
``finally`` block, no atexit handler runs):

* ``none`` — plain ``gdsynth ARGS``;
* ``kill-at-batch:K`` — SIGKILL at the start of training batch K (0-based, counted over the whole
  run), i.e. mid-epoch when K is not a multiple of the batches per epoch;
* ``kill-in-checkpoint:NAME:N`` — SIGKILL in the middle of the N-th write (1-based) of the
  checkpoint file ``NAME`` (e.g. ``last.ckpt``) by this process: half its bytes are on disk, under
  the name the writer was given (gdsynth's temporary name), the rest never come;
* ``simple-prep`` — inference uses the light preparation of :mod:`tests.reliability.prep` (no
  registration, no N4) instead of the full one: for the load test, where 100 exams must go
  through two concurrent processes in seconds.
"""

from __future__ import annotations

import os
import signal
import sys


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_at_batch(k: int) -> None:
    from gdsynth.training.module import Pix2PixModule

    original = Pix2PixModule.training_step
    seen = {"n": 0}

    def step(self, batch, batch_idx):  # noqa: ANN001, ANN202 - same signature as the original
        if seen["n"] + self._resume_offset == k:  # type: ignore[attr-defined]
            _die()
        seen["n"] += 1
        return original(self, batch, batch_idx)

    def on_train_start(self) -> None:  # noqa: ANN001
        self._resume_offset = self.trainer.global_step  # training batches (one count each)

    Pix2PixModule.training_step = step  # type: ignore[method-assign]
    Pix2PixModule.on_train_start = on_train_start  # type: ignore[method-assign]


def _kill_in_checkpoint(name: str, n: int) -> None:
    import io

    import torch
    from lightning_fabric.plugins.io import torch_io

    count = {"n": 0}
    original = torch_io._atomic_save

    def save(checkpoint, filepath):  # noqa: ANN001, ANN202
        if name in str(filepath):
            count["n"] += 1
        if name not in str(filepath) or count["n"] < n:
            return original(checkpoint, filepath)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        with open(filepath, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            os.fsync(fh.fileno())
        _die()

    torch_io._atomic_save = save


def _simple_prep() -> None:
    from gdsynth.inference import cohort
    from tests.reliability.prep import simple_prepare

    cohort.prepare_exam = simple_prepare


def main(argv: list[str]) -> int:
    fault, args = argv[0], argv[1:]
    name, _, value = fault.partition(":")
    if name == "kill-at-batch":
        _kill_at_batch(int(value))
    elif name == "kill-in-checkpoint":
        target, _, count = value.partition(":")
        _kill_in_checkpoint(target, int(count))
    elif name == "simple-prep":
        _simple_prep()
    elif name != "none":
        raise SystemExit(f"unknown fault {fault!r}")
    from gdsynth.cli.main import main as gdsynth

    return gdsynth(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
