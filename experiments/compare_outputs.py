"""Compare two output folders file by file (e.g. ``make demo`` before and after a refactor).

    python experiments/compare_outputs.py BEFORE AFTER [--json report.json]

Every file is classified as byte-identical, or, when the bytes differ: NIfTI images with the same
header geometry and voxel values (compression differs), JSON documents that differ only in
run-specific keys (times, dates, durations), text files identical once each folder's absolute path
is written as ``<OUT>``, or a real difference (listed with what differs). Files present on one side
only are listed too. Exits 1 when anything differs beyond those.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from gdsynth.io import read_image

# keys whose values change from run to run by design: they say when/where/how long, not what
RUN_KEYS = {"created", "started", "finished", "time", "timestamp", "date", "elapsed_s", "seconds",
            "duration_s", "wall_s", "runtime_s", "host", "hostname", "pid", "when", "generated",
            "written", "run_time_s", "mtime"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json_diff(a, b, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            sub = f"{where}.{key}" if where else key
            if key not in a or key not in b:
                out.append(f"{sub}: only in {'after' if key not in a else 'before'}")
            else:
                out += _json_diff(a[key], b[key], sub)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _json_diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [where or "(document)"]


def _is_run_key(path: str) -> bool:
    """A key (anywhere on its path, e.g. ``timings_s.mask``) that says when or how long."""
    parts = [p.split("[")[0].lower() for p in path.split(".")]
    return any(p in RUN_KEYS or any(k in p for k in ("time", "timing", "date", "elapsed", "duration",
                                                         "second"))
               for p in parts)


def _tsv_without_run_columns(text: str) -> list[list[str]]:
    rows = [line.split("\t") for line in text.splitlines()]
    if not rows:
        return rows
    keep = [i for i, name in enumerate(rows[0]) if not _is_run_key(name)]
    return [[r[i] if i < len(r) else "" for i in keep] for r in rows]


TEXT = (".json", ".tsv", ".txt", ".md", ".html", ".js", ".csv")


def _text(path: Path, root: Path) -> str:
    """The file's text with its output folder's absolute path written as ``<OUT>``."""
    return path.read_text(encoding="utf-8").replace(str(root.resolve()), "<OUT>")


def classify(before: Path, after: Path, rel: str) -> tuple[str, str]:
    a, b = before / rel, after / rel
    if _digest(a) == _digest(b):
        return "identical", ""
    if rel.endswith(TEXT) and _text(a, before) == _text(b, after):
        return "same-but-path", "identical once the output folder's path is written as <OUT>"
    if rel.endswith((".nii.gz", ".nii")):
        (xa, ga), (xb, gb) = read_image(a), read_image(b)
        if ga.same_grid(gb, atol=1e-6) and xa.shape == xb.shape and np.array_equal(xa, xb):
            return "same-voxels", "same grid and voxel values, different file bytes"
        if xa.shape == xb.shape:
            diff = np.abs(xa.astype(np.float64) - xb.astype(np.float64))
            return "different", f"max |difference| {diff.max():.3g}, {int((diff > 0).sum())} voxels"
        return "different", f"shape {xa.shape} vs {xb.shape}"
    if rel.endswith(".json"):
        try:
            ja, jb = json.loads(_text(a, before)), json.loads(_text(b, after))
        except ValueError as err:
            return "different", f"not JSON: {err}"
        keys = _json_diff(ja, jb)
        real = [k for k in keys if not _is_run_key(k)]
        if not real:
            return "run-specific", "differs only in " + ", ".join(keys[:6])
        return "different", "keys " + ", ".join(real[:8])
    if rel.endswith(".tsv"):
        if _tsv_without_run_columns(_text(a, before)) == _tsv_without_run_columns(_text(b, after)):
            return "run-specific", "differs only in timing columns"
    if rel.endswith(".gz"):
        if gzip.decompress(a.read_bytes()) == gzip.decompress(b.read_bytes()):
            return "same-voxels", "same content, different gzip header"
    return "different", f"{a.stat().st_size} vs {b.stat().st_size} bytes"


def compare(before: Path, after: Path) -> dict:
    files_a = {str(p.relative_to(before)) for p in before.rglob("*") if p.is_file()}
    files_b = {str(p.relative_to(after)) for p in after.rglob("*") if p.is_file()}
    report: dict = {"only_before": sorted(files_a - files_b), "only_after": sorted(files_b - files_a),
                    "files": {}}
    for rel in sorted(files_a & files_b):
        kind, why = classify(before, after, rel)
        report["files"][rel] = {"kind": kind, "why": why}
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--json", type=Path, help="write the whole report here")
    args = ap.parse_args()
    report = compare(args.before, args.after)
    kinds: dict[str, int] = {}
    for entry in report["files"].values():
        kinds[entry["kind"]] = kinds.get(entry["kind"], 0) + 1
    print(f"{len(report['files'])} files in both: " + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
    for side in ("only_before", "only_after"):
        for rel in report[side]:
            print(f"{side.replace('_', ' ')}: {rel}")
    for rel, entry in report["files"].items():
        if entry["kind"] not in ("identical",):
            print(f"{entry['kind']:>13}  {rel}  {entry['why']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    bad = report["only_before"] or report["only_after"] or "different" in kinds
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
