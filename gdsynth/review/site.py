"""The static review site: a cohort page, one NiiVue page per exam, mosaics, images.

Layout of ``REVIEW/``::

    index.html                 cohort table (sortable)
    exam-<pid>.html            linked viewer, overlays, lesion table, mosaic
    static/                    NiiVue UMD build + license, viewer JS/CSS
    data/<pid>/<key>.js        each volume once, as base64 NIfTI in a script (file:// viewing)
      or <key>.nii.gz          the same NIfTI file when the exam is too large to embed
    data/<pid>/exam.js         viewer configuration (JSON): files, scaling, windows, overlays
    data/<pid>/mosaic.png      axial mosaic

Volumes are header-free, cropped to the head and quantized (int16 images, uint8 overlays; the
scaling is in ``exam.js``). ``<pid>`` is a pseudonymous folder name (``e001``...). Everything is
plain files: the site opens from disk or behind ``gdsynth review --serve``; nothing is fetched
from the network.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdsynth.errors import OutputError
from gdsynth.io import atomic_write_text, read_image, write_labels
from gdsynth.io.sequences import input_names
from gdsynth.models.card import inputs_text
from gdsynth.review.exams import POST_LABELS, ReviewExam, collect, metric_columns, sequence_labels
from gdsynth.review.mosaic import write_mosaic
from gdsynth.review.render import copy_static, render
from gdsynth.review.volumes import (
    axial_axes,
    crop_to_box,
    head_box,
    outline,
    resample_to,
    window_presets,
    write_compact,
    write_js_config,
    write_volume_script,
)

log = logging.getLogger(__name__)

#: Overlays: role -> (label, NiiVue colormap, opacity, panels, visible).
OVERLAYS = {
    "enhancement": ("enhancement map", "warm", 0.7, ["synthetic"], True),
    "uncertainty": ("uncertainty", "winter", 0.6, ["synthetic"], False),
    "outline": ("lesion outlines", "green", 1.0, ["all"], True),
}


@dataclass(frozen=True)
class SiteOptions:
    """``embed_limit_mb``: embed volumes as base64 (file:// viewing) when an exam's NIfTI files
    total less than this; ``n_slices``: mosaic columns; ``threshold``: initial enhancement
    threshold (None: the 95th percentile of positive enhancement)."""

    embed_limit_mb: float = 48.0
    n_slices: int = 5
    threshold: float | None = None


def to_ras_view(array: np.ndarray, geometry) -> np.ndarray:
    """Permute/flip an (X, Y, Z) array so its axes run left→right, posterior→anterior,
    inferior→superior (RAS voxel order), for display only."""
    ras = np.diag([-1.0, -1.0, 1.0]) @ geometry.direction_matrix
    axes = [int(np.argmax(np.abs(ras[:, c]))) for c in range(3)]
    if sorted(axes) != [0, 1, 2]:
        return array
    order = [axes.index(w) for w in range(3)]
    out = np.transpose(array, order)
    for w in range(3):
        if ras[w, order[w]] < 0:
            out = np.flip(out, axis=w)
    return out


def _fmt(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _summary(rx: ReviewExam) -> dict:
    s = rx.summary
    prob = s.get("probability_active")
    n = s.get("n_lesions", len(rx.lesions) if rx.lesions or s else None)
    refer = s.get("refer_for_gadolinium")
    return {
        "probability": float(prob) if isinstance(prob, (int, float)) else None,
        "n_lesions": int(n) if isinstance(n, (int, float)) else None,
        "refer": bool(refer) if refer is not None else None,
        "reason": str(s.get("reason", "") or ""),
        "inputs": summary_inputs(s),
    }


def summary_inputs(summary: dict) -> str:
    """The inputs an activity summary says the prediction was made from (``T1w, FLAIR (no
    T2w)``); empty for a summary written before gdsynth recorded them."""
    used, missing = summary.get("inputs_used"), summary.get("inputs_missing") or []
    if not isinstance(used, list) or not isinstance(missing, list):
        return ""
    return inputs_text([str(u) for u in used], [str(m) for m in missing])


def attribution_columns(lesions: list[dict]) -> list[str]:
    """``attr_<method>_<Seq>`` columns (``gdsynth explain`` / ``predict --explain``) present in
    any lesion row, ablation first, sequences in the sequence registry's order (T1w, T2w, FLAIR)."""
    order = {name: n for n, name in enumerate(input_names())}
    cols = {k for r in lesions for k in r
            if k.startswith(("attr_ablation_", "attr_ig_", "attr_lrp_"))}
    return sorted(cols, key=lambda c: (not c.startswith("attr_ablation_"),
                                       order.get(c.rsplit("_", 1)[-1], 9), c))


def _lesion_rows(rx: ReviewExam) -> list[dict]:
    attr = attribution_columns(rx.lesions)
    rows = []
    for r in rx.lesions:
        label = r.get("label")
        rows.append({
            "label": int(label) if isinstance(label, float) and label.is_integer() else _fmt(label),
            "centre_x": r["centre_x"], "centre_y": r["centre_y"], "centre_z": r["centre_z"],
            "fx": f"{r['centre_x']:.1f}", "fy": f"{r['centre_y']:.1f}", "fz": f"{r['centre_z']:.1f}",
            "volume": _fmt(r.get("volume_mm3")), "mean": _fmt(r.get("mean_enhancement")),
            "max": _fmt(r.get("max_enhancement")), "score": _fmt(r.get("score")),
            "uncertainty": _fmt(r.get("uncertainty")), "location": r.get("location") or "",
            "attr": [_fmt(r.get(c)) for c in attr],
            "reported": _in_dseg(r.get("in_dseg")),
        })
    return rows


def _in_dseg(value) -> bool | None:
    """A lesion table's ``in_dseg`` (learned stage: the candidate is in the ``_dseg``, i.e. at or
    above the lesion threshold) as a bool; None when the table has no such column."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _detector_threshold(summary: dict) -> float | None:
    """The detector's low hysteresis threshold on the enhancement map, when the activity summary
    records it (``detection.low_used``), so the slider starts where the detector worked."""
    det = summary.get("detection")
    value = det.get("low_used") if isinstance(det, dict) else None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _threshold(enh: np.ndarray, chosen: float | None) -> dict:
    pos = enh[enh > 0]
    top = float(np.percentile(pos, 99.9)) if pos.size else 1.0
    top = top if top > 0 else 1.0
    value = chosen if chosen is not None else 0.25 * top
    value = min(max(value, 0.0), top)
    return {"min": 0.0, "max": round(top, 4), "step": round(top / 200, 6), "value": round(value, 4)}


def _store(data: Path, pid: str, key: str, array: np.ndarray, geometry,
           *, top: float | None = None, labels: bool = False) -> dict:
    """Write one compact volume (labels as they are, else :func:`write_compact`); return its
    viewer entry with the file and the scaling (``value = stored * scale + offset``)."""
    dst = data / f"{key}.nii.gz"
    if labels:
        write_labels(dst, array, geometry)
        scale, offset = 1.0, 0.0
    else:
        q = write_compact(dst, array, geometry, top=top)
        scale, offset = q.scale, q.offset
    return {"key": key, "file": f"data/{pid}/{dst.name}", "name": dst.name,
            "scale": scale, "offset": offset}


def _embed(data: Path, pid: str, items: list[dict]) -> None:
    """Replace each item's NIfTI file by a ``<key>.js`` script holding it in base64, so the page
    opens from file:// and loads a volume only when it is shown (each file stored once)."""
    for item in items:
        nifti = data / item["name"]
        write_volume_script(data / f"{item['key']}.js", BUNDLE, item["key"], nifti)
        nifti.unlink()
        item["script"] = f"data/{pid}/{item['key']}.js"
        del item["file"]


#: JS global holding embedded volumes (base64 NIfTI by key).
BUNDLE = "GDSYNTH_VOLUMES"


def build_exam(rx: ReviewExam, pid: str, out: Path, opts: SiteOptions) -> dict:
    """Write one exam's data folder, mosaic and page; return its cohort-table row.

    Every volume is stored once, cropped to the T1w's head box and quantized (int16 images,
    uint8 overlays); overlays switched off are only loaded by the page when switched on.
    """
    data = out / "data" / pid
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    volumes, display = [], {}
    box, ref_geometry = None, None  # head box and cropped grid of the first sequence (T1w)
    for role, label in sequence_labels().items():
        if role not in rx.files:
            continue
        array, geometry = read_image(rx.files[role], allow_constant=True)
        if box is None:
            box = head_box(array, geometry)
        array, geometry = crop_to_box(array, geometry, box)
        ref_geometry = ref_geometry or geometry
        item = _store(data, pid, role, array, geometry)
        volumes.append({**item, "label": label, "presets": window_presets(array)})
        display[label] = to_ras_view(resample_to(array, geometry, ref_geometry), ref_geometry)
    overlays, threshold, enh_view, lesion_view = [], None, None, None
    for role in ("enhancement", "uncertainty", "lesions"):
        if role not in rx.files:
            continue
        array, geometry = read_image(rx.files[role], allow_constant=True)
        if role == "lesions":
            labels = np.rint(np.clip(np.nan_to_num(array), 0, None)).astype(np.int64)
            edge = outline(labels, axial_axes(geometry))
            labels, _ = crop_to_box(labels, geometry, box)
            edge, geometry = crop_to_box(edge, geometry, box)
            lesion_view = to_ras_view(
                resample_to(labels.astype(np.float32), geometry, ref_geometry, order=0), ref_geometry
            )
            role, vmax, thr = "outline", 1.0, 0.5
            item = _store(data, pid, role, edge, geometry, labels=True)
        else:
            array, geometry = crop_to_box(array, geometry, box)
            pos = array[array > 0]
            vmax = float(np.percentile(pos, 99.9)) if pos.size else 1.0
            thr = float(np.percentile(pos, 75)) if pos.size else 0.0  # the most uncertain quarter
            if role == "enhancement":
                threshold = _threshold(array, opts.threshold if opts.threshold is not None
                                       else _detector_threshold(rx.summary))
                thr, vmax = threshold["value"], threshold["max"]
                enh_view = to_ras_view(resample_to(array, geometry, ref_geometry), ref_geometry)
            item = _store(data, pid, role, array, geometry, top=max(vmax, 1e-6))
        label, cmap, opacity, panels, visible = OVERLAYS[role]
        overlays.append({**item, "label": label, "colormap": cmap, "opacity": opacity,
                         "panels": panels, "visible": visible, "threshold": thr,
                         "max": max(vmax, thr + 1e-6)})
    size_mb = sum((data / i["name"]).stat().st_size for i in volumes + overlays) / 2**20
    embedded = size_mb <= opts.embed_limit_mb
    if embedded:
        _embed(data, pid, volumes + overlays)
    else:
        log.info("%s: %.0f MB of images, not embedded (use 'gdsynth review --serve')", rx.id, size_mb)
    config = {"volumes": volumes, "overlays": overlays, "sliceType": "axial",
              "bundle": BUNDLE if embedded else None}
    write_js_config(data / "exam.js", "GDSYNTH_EXAM", config)
    mosaic = write_mosaic(data / "mosaic.png", display, enhancement=enh_view,
                          threshold=threshold["value"] if threshold else 0.0,
                          lesions=lesion_view, n_slices=opts.n_slices,
                          base=POST_LABELS["synthetic"])
    summary = _summary(rx)
    page = f"exam-{pid}.html"
    attr_headers = [c.removeprefix("attr_").replace("_", " ")
                    for c in attribution_columns(rx.lesions)]
    html = render("exam.html", static="static/", data=f"data/{pid}/", exam=rx.id,
                  summary=summary, overlays=overlays, threshold=threshold,
                  attr_headers=attr_headers,
                  lesions=_lesion_rows(rx), mosaic=f"data/{pid}/{mosaic.name}", embedded=embedded)
    atomic_write_text(out / page, html)
    return {"exam": rx.id, "page": page, "mosaic": f"data/{pid}/{mosaic.name}",
            "has_real": "real" in rx.files, "metrics": rx.metrics, "embedded": embedded, **summary}


def build_site(
    pred: Path, bids: Path, out: Path, *, metrics: Path | None = None,
    options: SiteOptions | None = None,
) -> Path:
    """Build the review site for every predicted exam; return the path of ``index.html``."""
    opts = options or SiteOptions()
    pred, bids, out = Path(pred), Path(bids), Path(out)
    for src in (pred, bids):
        if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
            raise OutputError(out, f"review folder must not be inside the input folder {src}")
    if out.is_dir() and any(out.iterdir()) and not (out / "index.html").exists():
        raise OutputError(out, "folder is not empty and holds no earlier review site")
    exams = collect(pred, bids, metrics)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("static", "data"):  # rewritten below: never through a link to elsewhere
        if (out / sub).is_symlink():
            raise OutputError(out / sub, "is a symbolic link; the review site writes and deletes "
                                         "here, so it must be a real folder (remove the link)")
    copy_static(out / "static")
    if (out / "data").exists():
        shutil.rmtree(out / "data")
    rows = [build_exam(rx, f"e{n:03d}", out, opts) for n, rx in enumerate(exams, start=1)]
    cols = metric_columns({r["exam"]: r["metrics"] for r in rows})
    for r in rows:
        r["metrics"] = {c: _fmt(_to_float(r["metrics"].get(c))) for c in cols}
    from gdsynth.review.patterns import copy_pattern_page

    html = render("index.html", static="static/", rows=rows, metric_columns=cols,
                  embedded=all(r["embedded"] for r in rows),
                  patterns=copy_pattern_page(pred, out))
    index = atomic_write_text(out / "index.html", html)
    readable_site(out)
    return index


def readable_site(out: Path) -> None:
    """Make the site's own files 0644 and folders 0755 (atomic writes create 0600 files; a site is
    meant to be read). Symbolic links are neither followed nor changed: chmod through a link
    would change permissions outside the site."""
    for root, dirs, files in os.walk(out):  # does not descend into linked folders
        for name in (*dirs, *files):
            p = Path(root) / name
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)


def _to_float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
