"""Shared helpers of the benchmark scripts: timers, peak memory, machine description, matmul peak.

Every figure is reported twice: wall seconds and this process's CPU seconds (user + system, all
threads). On a shared machine other jobs inflate wall time; CPU time is the fairer figure, and
ratios of CPU times are what the harness compares (see ``benchmarks/run.py``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: 1 mm whole-brain exam (MNI-sized prepared grid) and its 2 mm counterpart.
SHAPE_1MM = (197, 233, 189)
SHAPE_2MM = (99, 117, 95)


@dataclass
class Timer:
    """Wall-clock and process CPU seconds of a ``with`` block (CPU: every thread of the process)."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Timer:
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = time.process_time() - self._cpu0

    def per(self, n: float) -> Timer:
        """This timer divided by ``n`` (per subject, per exam...)."""
        return Timer(self.wall / n, self.cpu / n)

    def __str__(self) -> str:
        return f"{self.wall:7.2f} s wall ({self.cpu:7.2f} s CPU)"


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (GB; Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def process_usage() -> dict[str, float]:
    """Peak RSS (GB; the largest of this process and its reaped children, e.g. data-loader
    workers) and CPU seconds of this process and its children so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"peak_rss_gb": max(me.ru_maxrss, kids.ru_maxrss) / 1e6,
            "process_cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime}


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, torch and its threads, BLAS settings, load."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "env": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                           "MKL_NUM_THREADS", "GDSYNTH_THREADS") if k in os.environ},
        "load_avg": [round(v, 2) for v in os.getloadavg()],
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def sync(device: str) -> None:
    """Wait for queued CUDA work (no-op on CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def matmul_gflops(n: int = 2048, repeats: int = 5, *, device: str = "cpu",
                  dtype: str = "float32") -> dict[str, float]:
    """Practical peak: GFLOP/s of an ``n x n`` matmul, by wall time and by process CPU time."""
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(n, n, device=device).to(dt)
    b = torch.randn(n, n, device=device).to(dt)
    a @ b
    sync(device)
    with Timer() as t:
        for _ in range(repeats):
            a @ b
        sync(device)
    flop = repeats * 2 * n**3 / 1e9
    return {"wall": flop / t.wall, "cpu": flop / max(t.cpu, 1e-9)}


def run_child(argv: list[str], *, env: dict[str, str] | None = None,
              timeout: float | None = None) -> dict[str, Any]:
    """Run ``argv`` (a benchmark step) in its own process, so its memory peak is its own; return
    the JSON object it prints on its last stdout line (the step reports its peak RSS and CPU time
    itself, see :func:`process_usage`), plus ``process_wall_s``; ``{"error": ...}`` if it failed."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": f"timed out after {timeout} s"}
    wall = time.perf_counter() - start
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join((err or out).strip().splitlines()[-3:])
        return {"error": f"exit {proc.returncode}: {tail[-400:]}"}
    result = json.loads(lines[-1])
    result.setdefault("process_wall_s", wall)
    return result


def child_argv(script: Path, *args: str) -> list[str]:
    """``[python, script, *args]`` with the interpreter running this process."""
    return [sys.executable, str(script), *args]
