"""Smoke test of the benchmark harness (``benchmarks/run.py``): the cheapest rows, tiny sizes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def run_module():
    pytest.importorskip("monai")
    sys.path.insert(0, str(BENCH))
    try:
        import run

        yield run
    finally:
        sys.path.remove(str(BENCH))


def test_quick_rows_are_numeric(run_module, tmp_path) -> None:
    run = run_module
    result = run.measure_inference((24, 32, 4), mc=2, matmul_n=128)
    rows = run.build_rows({"inference@tiny": {**result, **run.process_usage()}})
    names = [r["row"] for r in rows]
    assert any(n.startswith("synthesis 1 sample") for n in names)
    assert any(n.startswith("MONAI") for n in names)
    for r in rows:
        assert isinstance(r["wall"], float) and math.isfinite(r["wall"]) and r["wall"] > 0, r
        assert isinstance(r["cpu"], float) and math.isfinite(r["cpu"]), r
    assert all(isinstance(r["ratio"], float) for r in rows if r["ratio_of"]), rows
    assert rows[0]["peak_rss_gb"] > 0
    text = run.format_text(rows)
    markdown = run.format_markdown(rows, run.machine_info())
    assert "synthesis 1 sample" in text and markdown.count("\n|") == len(rows) + 2


def test_failed_step_is_a_row(run_module) -> None:
    rows = run_module.build_rows({"prepare@2mm": {"error": "exit 1: boom"}})
    assert rows == [run_module._row("prepare@2mm", None, None, "", note="exit 1: boom")]


def test_compiled_rows_next_to_eager(run_module) -> None:
    """The torch.compile rows (measured by ``measure_inference(..., compile=True)``, too slow to
    compile here) are built from the result next to the eager rows, compile time apart."""
    run = run_module
    timing = {"wall": 2.0, "cpu": 1.8}
    result = {"shape": [99, 117, 95], "batch": 8, "mc": 10, "gflop_per_exam": 63.8,
              "one": {"wall": 1.3, "cpu": 1.2}, "mc_run": {**timing, "slices_timed": 95},
              "matmul_fp32": {"wall": 80.0, "cpu": 80.0},
              "compiled": {"compile_one": {"wall": 40.0, "cpu": 18.0},
                           "compile_mc": {"wall": 20.0, "cpu": 12.0},
                           "one": {"wall": 1.0, "cpu": 0.9}, "mc_run": {**timing, "slices_timed": 95},
                           "graphs": 3, "recompiles": 0,
                           "warm": {"compile_one": {"wall": 9.0, "cpu": 7.0},
                                    "compile_mc": {"wall": 6.0, "cpu": 5.0}}}}
    rows = {r["row"]: r for r in run.build_rows({"inference@2mm": result})}
    one = rows["synthesis 1 sample compiled 2mm"]
    assert one["cpu"] == 0.9 and math.isclose(one["ratio"], 1.2 / 0.9)
    assert math.isclose(rows["generator GFLOP/s compiled 2mm"]["ratio"], 63.8 / 0.9 / 80.0)
    compile_row = rows["torch.compile time 2mm"]
    assert compile_row["wall"] == 60.0 and math.isclose(compile_row["ratio"], 40.0 / 0.3)
    assert "0 recompiles" in compile_row["note"] and "warm cache" in compile_row["note"]
    assert "synthesis 1 sample 2mm" in rows  # the eager rows stay
    failed = run.build_rows({"inference@2mm": {**result, "compiled": {"error": "no compiler"}}})
    assert failed[-1]["row"] == "synthesis compiled 2mm" and failed[-1]["note"] == "no compiler"


def test_steps_are_registry_entries(run_module) -> None:
    """Every --steps choice plans children that MEASURES can run; a bad name lists the valid ones."""
    run = run_module
    jobs = run.plan(False, "cpu", run.STEPS, None, resolutions=[2.0, 1.0])
    children = [key.split("@")[0] for key, _ in jobs]
    assert set(children) <= set(run.MEASURES) and set(children) - {"compile"} <= set(run.ROWS)
    assert children[:3] == ["phantom", "prepare", "inference"]  # per resolution, then the others
    assert [k for k, _ in jobs][3:6] == ["phantom@1mm", "prepare@1mm", "inference@1mm"]
    with pytest.raises(ValueError, match="valid steps: phantom, prepare"):
        run.plan(True, "cpu", ("phantoms",), None)
    with pytest.raises(ValueError, match="valid steps: .*precision-training"):
        run.run_step("bogus", {})


def test_compiled_inference_child_gets_its_own_inductor_cache(run_module) -> None:
    """A fresh, empty cache folder in the child's env only, removed afterwards."""
    import os

    run = run_module
    before = os.environ.get(run.INDUCTOR_CACHE_ENV)
    with run.child_env("inference", {"compile": True}) as env:
        cache = Path(env[run.INDUCTOR_CACHE_ENV])
        assert cache.is_dir() and not any(cache.iterdir())
        assert os.environ.get(run.INDUCTOR_CACHE_ENV) == before
    assert not cache.exists()
    for step, params in (("inference", {"compile": False}), ("phantom", {"compile": True})):
        with run.child_env(step, params) as env:
            assert env is None
