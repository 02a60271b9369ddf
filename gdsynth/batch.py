"""Batches of cases (exams, phantom subjects): one step per case, one :class:`CaseResult` per case.

Every folder-level command runs its cases through :func:`iter_batch` (phantom subjects, ``prepare``,
training's preparation, ``synthesize``/``detect``/``predict``, ``label``, ``explain``):

* a case whose step raises one of ``catch`` (any ``Exception`` unless narrowed) is recorded as
  ``failed`` with one line (:func:`error_line`) and the batch goes on; other exceptions stop it;
* resume: a step returns :class:`Skipped` for a case it found complete; results decided before the
  run (:func:`precheck`: inputs hashed, completion records read) pass through without the step;
* ``ahead`` + ``ahead_workers``: a first stage (preparation) runs in background threads for the
  upcoming cases while the step handles the current one; ``workers`` > 1: the step runs in worker
  processes (step and items picklable);
* results come in the order of ``items``, with a progress bar (:func:`gdsynth.progress.track`).

This module sits below every layer that runs batches (beside :mod:`gdsynth.errors` and
:mod:`gdsynth.progress`); the CLI prints the summary (``gdsynth.cli._common.finish_batch``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from gdsynth.errors import GdsynthError
from gdsynth.progress import track

log = logging.getLogger(__name__)
T = TypeVar("T")

DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass
class CaseResult:
    """Outcome of one case of a batch. ``status``: ``done``, ``skipped`` (complete already, or not
    applicable: ``error`` then says why) or ``failed`` (``error``: one line). ``seconds``: the
    step's wall time (0 for a result decided before the run). ``value``: what the step returned."""

    case: str
    status: str
    seconds: float = 0.0
    error: str = ""
    value: Any = None


@dataclass(frozen=True)
class Skipped:
    """What a step (or a :func:`precheck`) returns for a case it need not redo; ``value`` is kept
    in the result, ``reason`` becomes its ``error`` (empty: already complete)."""

    value: Any = None
    reason: str = ""


def error_line(exc: BaseException) -> str:
    """One line for a failed case: the GdsynthError message, else the exception type and text."""
    text = str(exc) if isinstance(exc, GdsynthError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


def attempt(step: Callable[[T], Any], item: T, case: str,
            catch: tuple[type[BaseException], ...] = (Exception,)) -> CaseResult:
    """``step(item)`` timed and guarded: ``done`` with its value, ``skipped`` when it returns
    :class:`Skipped`, ``failed`` when it raises one of ``catch`` (other exceptions propagate)."""
    start = time.perf_counter()
    try:
        value = step(item)
    except catch as exc:
        log.debug("%s failed", case, exc_info=True)
        return CaseResult(case, FAILED, time.perf_counter() - start, error_line(exc))
    seconds = time.perf_counter() - start
    if isinstance(value, Skipped):
        return CaseResult(case, SKIPPED, seconds, value.reason, value.value)
    return CaseResult(case, DONE, seconds, value=value)


def precheck(items: Sequence[T], check: Callable[[T], Any], *, case: Callable[[T], str]
             ) -> tuple[dict[str, Any], dict[str, CaseResult]]:
    """Run the cheap ``check`` (input hashes, completion record) on every item before the batch.
    Returns ``(todo, decided)``: case → what ``check`` returned for the cases to run, and case →
    result (0 s) for those it skipped (:class:`Skipped`) or that failed (a missing or unreadable
    input fails that case only)."""
    todo: dict[str, Any] = {}
    decided: dict[str, CaseResult] = {}
    for item in items:
        result = attempt(check, item, case(item))
        if result.status == DONE:
            todo[result.case] = result.value
        else:
            decided[result.case] = replace(result, seconds=0.0, value=None)
    return todo, decided


def iter_batch(
    items: Sequence[T],
    step: Callable[..., Any],
    *,
    case: Callable[[T], str],
    description: str,
    progress: bool = True,
    decided: Mapping[str, CaseResult] | None = None,
    ahead: Callable[[T], Any] | None = None,
    ahead_workers: int = 0,
    workers: int = 1,
    catch: tuple[type[BaseException], ...] = (Exception,),
) -> Iterator[CaseResult]:
    """Yield one :class:`CaseResult` per item, in order (see the module docstring).

    ``step(item)``, or ``step(item, ahead(item))`` when ``ahead`` is given; ``case(item)`` names
    the case; ``decided`` (by case name) are yielded as they are. ``progress``: a bar on stderr
    unless quiet (``--quiet``); False: none. ``ahead_workers`` > 0: threads running ``ahead``
    (an error there fails its case when the step would have used it). ``workers`` > 1 (and more
    than one item): processes running the step, not combined with ``ahead``."""
    items = list(items)
    decided = dict(decided or {})
    if workers > 1 and len(items) > 1:
        if ahead is not None:
            raise ValueError("iter_batch: 'ahead' runs in threads of this process; "
                             "it cannot be combined with worker processes")
        results = _in_processes(items, step, case, decided, workers, catch)
    elif ahead is not None and ahead_workers > 0:
        results = _with_ahead(items, step, case, decided, ahead, ahead_workers, catch)
    else:
        call = step if ahead is None else (lambda item: step(item, ahead(item)))
        results = (decided.get(case(item)) or attempt(call, item, case(item), catch)
                   for item in items)
    yield from track(results, description, total=len(items), enabled=None if progress else False)


def _with_ahead(items: list[T], step: Callable[[T, Any], Any], case: Callable[[T], str],
                decided: dict[str, CaseResult], ahead: Callable[[T], Any], workers: int,
                catch: tuple[type[BaseException], ...]) -> Iterator[CaseResult]:
    """Keep ``workers`` + 1 upcoming cases in ``ahead`` threads; the step waits for its case's."""
    pending = [k for k, item in enumerate(items) if case(item) not in decided]
    futures: dict[int, Future] = {}
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for k, item in enumerate(items):
            while pending and len(futures) < workers + 1:
                nxt = pending.pop(0)
                futures[nxt] = pool.submit(ahead, items[nxt])
            if case(item) in decided:
                yield decided[case(item)]
                continue
            future = futures.pop(k, None)
            get = future.result if future is not None else (lambda item=item: ahead(item))
            yield attempt(lambda item, get=get: step(item, get()), item, case(item), catch)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _in_processes(items: list[T], step: Callable[[T], Any], case: Callable[[T], str],
                  decided: dict[str, CaseResult], workers: int,
                  catch: tuple[type[BaseException], ...]) -> Iterator[CaseResult]:
    """The step of every undecided case in a pool of ``workers`` processes, results in order."""
    pool = ProcessPoolExecutor(max_workers=min(workers, len(items)))
    try:
        futures = {k: pool.submit(attempt, step, item, case(item), catch)
                   for k, item in enumerate(items) if case(item) not in decided}
        for k, item in enumerate(items):
            yield decided[case(item)] if k not in futures else futures[k].result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["DONE", "FAILED", "SKIPPED", "CaseResult", "Skipped", "attempt", "error_line",
           "iter_batch", "precheck"]
