"""The one batch runner (gdsynth.batch): per-case results, failures, resume, ahead threads, processes."""

from __future__ import annotations

import threading
from functools import partial

import pytest

from gdsynth.batch import CaseResult, Skipped, attempt, error_line, iter_batch, precheck
from gdsynth.errors import InputFileMissingError


def _square(x: int, *, fail_on: int = -1) -> int | Skipped:
    """Picklable step for the process pool: skips 0, fails on ``fail_on``."""
    if x == fail_on:
        raise InputFileMissingError(f"/data/{x}.nii.gz", "does not exist")
    return Skipped(reason="zero") if x == 0 else x * x


def test_results_in_order_with_status_value_and_one_line_errors():
    results = list(iter_batch(range(4), partial(_square, fail_on=2), case=str,
                              description="t", progress=False))
    assert [(r.case, r.status, r.value, r.error) for r in results] == [
        ("0", "skipped", None, "zero"), ("1", "done", 1, ""),
        ("2", "failed", None, "/data/2.nii.gz: does not exist"), ("3", "done", 9, "")]
    assert all(r.seconds >= 0 for r in results)


def test_error_line_is_one_line_with_the_type_of_unknown_errors():
    assert error_line(ValueError("bad\n  value")) == "ValueError: bad value"
    assert error_line(InputFileMissingError("/x", "gone")) == "/x: gone"
    assert len(error_line(RuntimeError("x" * 900))) == 500


def test_catch_narrows_what_a_case_may_fail_with():
    def step(x):
        raise TypeError("a bug")

    assert attempt(step, 1, "a", catch=(Exception,)).status == "failed"
    with pytest.raises(TypeError, match="a bug"):
        list(iter_batch([1], step, case=str, description="t", progress=False,
                        catch=(OSError, ValueError)))


def test_precheck_decides_skipped_and_failed_cases_before_the_run():
    def check(x):
        if x == 1:
            raise InputFileMissingError("/in", "missing")
        return Skipped() if x == 2 else {"key": x}

    todo, decided = precheck([0, 1, 2], check, case=str)
    assert todo == {"0": {"key": 0}}
    assert decided == {"1": CaseResult("1", "failed", 0.0, "/in: missing"),
                       "2": CaseResult("2", "skipped", 0.0)}
    calls = []
    results = list(iter_batch([0, 1, 2], lambda x: calls.append(x), case=str, description="t",
                              progress=False, decided=decided))
    assert calls == [0] and [r.status for r in results] == ["done", "failed", "skipped"]


@pytest.mark.parametrize("ahead_workers", [0, 2])
def test_ahead_stage_feeds_the_step_and_its_errors_fail_the_case(ahead_workers):
    main = threading.get_ident()
    threads = set()

    def ahead(x):
        threads.add(threading.get_ident())
        if x == 3:
            raise ValueError("unreadable")
        return x + 100

    decided = {"1": CaseResult("1", "skipped")}
    results = list(iter_batch(range(5), lambda x, prepared: prepared, case=str, description="t",
                              progress=False, decided=decided, ahead=ahead,
                              ahead_workers=ahead_workers))
    assert [(r.status, r.value) for r in results] == [
        ("done", 100), ("skipped", None), ("done", 102), ("failed", None), ("done", 104)]
    assert results[3].error == "ValueError: unreadable"
    assert (main in threads) == (ahead_workers == 0)  # threads prepare ahead when asked


def test_worker_processes_give_the_same_results_in_order():
    step = partial(_square, fail_on=2)
    one = list(iter_batch(range(4), step, case=str, description="t", progress=False))
    two = list(iter_batch(range(4), step, case=str, description="t", progress=False, workers=2))
    assert [(r.case, r.status, r.value, r.error) for r in two] == \
        [(r.case, r.status, r.value, r.error) for r in one]
    with pytest.raises(ValueError, match="ahead"):
        list(iter_batch(range(2), step, case=str, description="t", ahead=abs, workers=2))
