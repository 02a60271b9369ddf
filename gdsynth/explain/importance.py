"""Cohort-level sequence importance from per-lesion attribution shares (pure functions).

Input rows are lesion-table rows (strings or numbers) carrying ``attr_<method>_<Seq>`` shares; the
output has one row per (method, sequence): ``n_lesions``, ``mean_share``, ``sd_share``,
``median_share`` and ``mean_abs_share`` (the sequence's share of the total |attribution|, averaged
over lesions; unitless, Σ over sequences of ``mean_abs_share`` = 1 when every lesion has some).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gdsynth.explain.attribution import Method

IMPORTANCE_COLUMNS = ("method", "sequence", "n_lesions", "mean_share", "sd_share", "median_share",
                      "mean_abs_share")


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def sequence_importance(rows: Sequence[Mapping[str, Any]], sequences: Sequence[str],
                        methods: Sequence[Method | str] = tuple(Method)) -> list[dict[str, Any]]:
    """One row per (method, sequence) present in ``rows`` (lesions without the column skipped)."""
    out = []
    for method in (Method(m) for m in methods):
        for seq in sequences:
            col = f"attr_{method.value}_{seq}"
            values = np.array([v for r in rows if (v := _number(r.get(col))) is not None])
            if values.size == 0:
                continue
            out.append({
                "method": method.value, "sequence": seq, "n_lesions": int(values.size),
                "mean_share": float(values.mean()),
                "sd_share": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                "median_share": float(np.median(values)),
                "mean_abs_share": float(np.abs(values).mean()),
            })
    return out
