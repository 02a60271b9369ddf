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
