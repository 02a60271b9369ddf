"""Experiment dashboard without an account: one self-contained HTML page comparing training runs.

Reads only what every ``gdsynth train`` run writes::

    RUN/config.yaml                    the exact configuration
    RUN/logs/version_*/metrics.csv     losses, learning rates, gradient norms, validation metrics
    RUN/panels/val-step*.png           validation panels
    RUN/metrics.json, RUN/model/model_card.json   final steps and validation metrics

(metric names of earlier versions read as today's: ``gdsynth.training.metrics.RENAMED_VAL_METRICS``)

and writes one page (curves as PNG images made with matplotlib, panels embedded as data URIs,
no script, nothing fetched from the network). Every value is HTML-escaped by the template.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from gdsynth.errors import InputFileMissingError
from gdsynth.io import atomic_write_text
from gdsynth.review.render import render
from gdsynth.training.metrics import current_metric_name  # runs of earlier versions read as now

#: Curves drawn first, in this order, when present; then every other ``val/`` column.
CURVE_ORDER = ("train/loss_g", "train/loss_d", "train/l1", "train/adv", "train/ssim",
               "train/lr_g", "train/lr_d", "train/grad_norm_g", "train/grad_norm_d")
#: Validation panels shown per run (evenly spaced over training, the last one included).
MAX_PANELS = 6


@dataclass
class Run:
    """One training run folder, read."""

    path: Path
    label: str
    config: dict = field(default_factory=dict)
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    panels: list[Path] = field(default_factory=list)


def _number(text: str | None) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_series(run: Path) -> dict[str, list[tuple[int, float]]]:
    """``{column: [(step, value), ...]}`` from every ``logs/version_*/metrics.csv`` of a run (a
    resumed run has several), sorted by step; later files win for the same step."""
    merged: dict[str, dict[int, float]] = {}
    for path in sorted(run.glob("logs/version_*/metrics.csv"),
                       key=lambda p: int(p.parent.name.split("_")[-1] or 0)):
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                step = _number(row.get("step"))
                if step is None:
                    continue
                for key, text in row.items():
                    value = _number(text)
                    if key in ("epoch", "step") or value is None:
                        continue
                    merged.setdefault(current_metric_name(key), {})[int(step)] = value
    return {k: sorted(v.items()) for k, v in merged.items()}


def flatten(config: object, prefix: str = "") -> dict[str, str]:
    """Nested mappings as ``{"a.b.c": "value"}`` (lists and scalars shown as compact JSON)."""
    if isinstance(config, dict):
        out: dict[str, str] = {}
        for k, v in config.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): json.dumps(config, sort_keys=True, default=str)}


def read_run(path: Path, label: str | None = None) -> Run:
    """Read one run folder; :class:`InputFileMissingError` when it is not a training run."""
    import yaml

    path = Path(path)
    config_file = path / "config.yaml"
    if not path.is_dir() or not (config_file.is_file() or list(path.glob("logs/*/metrics.csv"))):
        raise InputFileMissingError(path, "not a training run (no config.yaml or "
                                    "logs/version_*/metrics.csv; give the -o folder of "
                                    "'gdsynth train')")
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    final: dict[str, float] = {}
    card = path / "model" / "model_card.json"
    for source in (path / "metrics.json", card):
        if source.is_file():
            data = json.loads(source.read_text(encoding="utf-8"))
            training = data.get("training", data) if source == card else data
            steps = _number(training.get("steps"))
            if steps is not None:
                final["steps"] = steps
            vals = training.get("val_metrics", training.get("val", {})) or {}
            final.update({current_metric_name(k): v for k, v in ((k, _number(v)) for k, v in vals.items())
                          if v is not None})
    panels = sorted(path.glob("panels/val-step*.png"))
    if len(panels) > MAX_PANELS:
        picks = {round(i * (len(panels) - 1) / (MAX_PANELS - 1)) for i in range(MAX_PANELS)}
        panels = [panels[i] for i in sorted(picks)]
    return Run(path=path, label=label or path.name, config=config or {},
               series=read_series(path), final=final, panels=panels)


def _labels(paths: list[Path]) -> list[str]:
    """Folder names, made unique with their parent folders when they repeat."""
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def curve_png(key: str, runs: list[Run]) -> bytes:
    """One metric over steps, one line per run (legend by run number, labels in the page)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.6), dpi=80)
    for n, run in enumerate(runs, start=1):
        points = run.series.get(key, [])
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o" if len(points) < 12 else None, markersize=3,
                    linewidth=1.2, label=f"run {n}")
    ax.set_title(key, fontsize=9)
    ax.set_xlabel("step (training batches)", fontsize=8)
    ax.tick_params(labelsize=7)
    if key.startswith(("train/lr", "train/grad_norm")) or "loss" in key:
        values = [v for r in runs for _, v in r.series.get(key, [])]
        if values and min(values) > 0 and max(values) / min(values) > 50:
            ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def curve_keys(runs: list[Run]) -> list[str]:
    present = {k for r in runs for k in r.series}
    first = [k for k in CURVE_ORDER if k in present]
    rest = sorted(k for k in present if k not in first and k.startswith(("val/", "train/")))
    return first + rest


def config_rows(runs: list[Run]) -> list[dict]:
    """Every config field with each run's value; ``differs`` when the runs disagree."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted(set().union(*flat)) if flat else []
    rows = []
    for key in keys:
        values = [f.get(key, "—") for f in flat]
        rows.append({"key": key, "values": values, "differs": len(set(values)) > 1})
    return rows


def final_rows(runs: list[Run]) -> list[dict]:
    keys = sorted({k for r in runs for k in r.final}, key=lambda k: (k != "steps", k))
    return [{"key": k, "values": [_fmt(r.final.get(k)) for r in runs]} for k in keys]


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() and abs(value) < 1e9 else f"{value:.4g}"


def build_dashboard(run_dirs: list[Path], page: Path) -> Path:
    """Write the dashboard comparing ``run_dirs`` to the HTML file ``page``; return it."""
    paths = [Path(p) for p in run_dirs]
    runs = [read_run(p, label) for p, label in zip(paths, _labels(paths), strict=True)]
    curves = [{"key": k, "src": _png_uri(curve_png(k, runs))} for k in curve_keys(runs)]
    panels = [{"label": r.label, "items": [
        {"src": _png_uri(p.read_bytes()), "step": p.stem.removeprefix("val-step").lstrip("0") or "0"}
        for p in r.panels]} for r in runs]
    rows = config_rows(runs)
    html = render("runs.html", runs=[{"n": n, "label": r.label, "path": str(r.path)}
                                     for n, r in enumerate(runs, start=1)],
                  curves=curves, panels=panels, config_rows=rows,
                  n_differ=sum(r["differs"] for r in rows), final_rows=final_rows(runs))
    return atomic_write_text(Path(page), html)
