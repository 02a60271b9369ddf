"""Official BIDS validator on a ``gdsynth demo`` folder: errors and warnings per dataset.

    python experiments/bids_validate.py DEMO_OUT [--run-demo] [--model phantom] [--subjects 2]

Validates ``DEMO_OUT/bids`` (raw phantom), ``derivatives/phantom`` (truth),
``derivatives/gdsynth-prep`` and ``derivatives/gdsynth`` with ``bids-validator-deno`` (the test
extra) and prints one row per dataset with its error and warning counts and the error codes, then
per exam the range of the synthetic post-Gd, its share of negative voxels and its mean magnitude
where the input T1w is 0 (background). ``--run-demo`` first runs ``gdsynth demo`` into DEMO_OUT
(resumable).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
from pathlib import Path

DATASETS = {"raw": "", "phantom truth": "derivatives/phantom", "prep": "derivatives/gdsynth-prep",
            "gdsynth": "derivatives/gdsynth"}


def validate(dataset: Path) -> list[dict]:
    """Issues (dicts with ``severity``, ``code``, ``location``) of ``bids-validator-deno``."""
    exe = shutil.which("bids-validator-deno", path=str(Path(sys.executable).parent)) or \
        shutil.which("bids-validator-deno")
    if exe is None:
        raise SystemExit("bids-validator-deno not found: pip install -e '.[test]'")
    run = subprocess.run([exe, str(dataset), "--format", "json"], capture_output=True, text=True,
                         timeout=600)
    return json.loads(run.stdout)["issues"]["issues"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path)
    parser.add_argument("--run-demo", action="store_true")
    parser.add_argument("--model", default="phantom")
    parser.add_argument("--subjects", type=int, default=2)
    args = parser.parse_args()
    if args.run_demo:
        from gdsynth.cli.main import main as gdsynth

        code = gdsynth(["--quiet", "demo", "--out", str(args.demo), "--subjects",
                        str(args.subjects), "--model", args.model])
        if code:
            raise SystemExit(code)
    print("| dataset | errors | warnings | error codes |\n|---|---|---|---|")
    for name, rel in DATASETS.items():
        issues = validate(args.demo / "bids" / rel)
        errors = [i for i in issues if i.get("severity") == "error"]
        codes = collections.Counter(f"{i['code']}" + (f"/{i['subCode']}" if i.get("subCode") else "")
                                    for i in errors)
        warnings = sum(i.get("severity") == "warning" for i in issues)
        print(f"| {name} | {len(errors)} | {warnings} | "
              f"{', '.join(f'{c} x{n}' for c, n in sorted(codes.items())) or '-'} |")
    synthetic_stats(args.demo)


def synthetic_stats(demo: Path) -> None:
    """Range, negative share and background magnitude of each synthetic post-Gd."""
    import numpy as np

    from gdsynth.inference import outputs as O
    from gdsynth.io import read_image
    from gdsynth.io.bids import discover

    print("\n| exam | synthetic min..max | input min..max | negative voxels | mean abs where input = 0 |"
          "\n|---|---|---|---|---|")
    for exam in discover(demo / "bids"):
        path = O.SYNTHETIC.find(demo / "bids" / DATASETS["gdsynth"], exam)
        if not path.is_file():
            continue
        synthetic, _ = read_image(path)
        t1w, _ = read_image(exam.t1w)
        print(f"| {exam.id} | {synthetic.min():.0f}..{synthetic.max():.0f} | {t1w.min():.0f}.."
              f"{t1w.max():.0f} | {100 * (synthetic < 0).mean():.2f} % | "
              f"{np.abs(synthetic[t1w == 0]).mean():.1f} |")


if __name__ == "__main__":
    main()
