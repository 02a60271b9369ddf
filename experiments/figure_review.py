#!/usr/bin/env python
"""Figure of the review site: one exam page of a ``gdsynth demo`` run, with its caption from data.

Reads a demo folder (``gdsynth demo --out DIR``: ``DIR/bids`` with the phantom truth in
``bids/derivatives/phantom``, predictions in ``bids/derivatives/gdsynth``, ``DIR/evaluation`` with
``per_exam.tsv``/``lesions.tsv``/``predicted_lesions.tsv``, the site in ``DIR/review``), picks an
exam (default: the first exam that is truly active by the phantom truth), serves the site on
127.0.0.1, opens the exam page in headless Debian chromium, waits for the viewers
(``window.gdViewerReady``), centres them (see :func:`choose_focus`) and saves a screenshot. The
caption is written from the same files: the truth, the exam's ``_desc-activity_summary.json`` and
the evaluation's MSSEG lesion matching (read, not recomputed).

    python experiments/figure_review.py --run-demo --demo work/demo \\
        --png docs/img/review.png --caption docs/img/review_caption.md

``--run-demo`` runs ``gdsynth demo`` into ``--demo`` first (``-n``, ``--seed``, ``--model``,
``--mc-samples`` are passed through; the demo resumes, so a second run only redoes what is
missing). ``--exam sub-XXX`` chooses the exam. Needs ``/usr/bin/chromium`` and
``/usr/bin/chromedriver`` (``make browser-deps``) and selenium (the test extra).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
    "--disable-background-networking --disable-component-update --disable-sync --no-first-run "
    "--enable-unsafe-swiftshader --hide-scrollbars"
).split()


# --- pure functions: truth, summary and evaluation rows -> focus and caption ---------------------

def _num(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN -> None


def _flag(value: object) -> bool | None:
    """A boolean from JSON (True/False) or a TSV cell ("true"/"false"); None when absent."""
    if isinstance(value, bool) or value is None:
        return value
    text = str(value).strip().lower()
    return {"true": True, "false": False, "1": True, "0": False}.get(text)


def enhancing_truth(truth_rows: list[dict]) -> list[dict]:
    """The truly enhancing lesions of an exam: rows of the phantom's ``_lesions.tsv`` with
    enhancing voxels (``n_enhancing_voxels`` > 0; the ``_label-L_desc-enhancing_dseg`` labels)."""
    return [r for r in truth_rows if (_num(r.get("n_enhancing_voxels")) or 0) > 0]


@dataclass(frozen=True)
class Focus:
    """Where the views are centred: a detected lesion (``label`` of the lesion table) or a truth
    lesion (``centre`` in world RAS mm); ``text`` says which, for the caption."""

    text: str
    label: str | None = None
    centre: tuple[float, float, float] | None = None


def choose_focus(truth_rows: list[dict], predicted_rows: list[dict]) -> Focus | None:
    """Centre on the top-scoring detection that matches a true enhancing lesion; else, in a truly
    active exam, on its largest (missed) enhancing lesion; else on the top-scoring detection (a
    false positive); None when there is nothing to show (the page's default position).

    ``predicted_rows``: the exam's rows of the evaluation's ``predicted_lesions.tsv``
    (``source_label`` is the label of the prediction's lesion table).
    """
    def top(rows: list[dict]) -> dict:
        return max(rows, key=lambda r: _num(r.get("score")) or -1.0)

    hits = [r for r in predicted_rows if _flag(r.get("true_positive"))]
    if hits:
        r = top(hits)
        return Focus(f"the top-scoring detection that matches a true enhancing lesion "
                     f"(label {r['source_label']}, score {_num(r.get('score')) or 0:.2f})",
                     label=str(r["source_label"]))
    truth = enhancing_truth(truth_rows)
    if truth:
        r = max(truth, key=lambda r: _num(r.get("volume_mm3")) or 0.0)
        centre = tuple(float(r[f"centre_{a}"]) for a in "xyz")
        return Focus(f"the largest true enhancing lesion ({_num(r['volume_mm3']):.0f} mm³, "
                     "not detected)", centre=centre)  # type: ignore[arg-type]
    if predicted_rows:
        r = top(predicted_rows)
        return Focus(f"the top-scoring detection, a false positive (label {r['source_label']}, "
                     f"score {_num(r.get('score')) or 0:.2f})", label=str(r["source_label"]))
    return None


def verdict(active: bool, refer: bool | None, n_detected: int) -> str:
    """One true sentence on the exam-level decision against the truth."""
    if refer is None:
        return "No referral decision was recorded for this exam."
    if active and refer and n_detected:
        return "Correctly referred: the exam is truly active and gdsynth recommends gadolinium."
    if active and refer:
        return ("Referred, and the exam is truly active, but on false-positive detections only: "
                "none of its enhancing lesions was found.")
    if active:
        return "Missed: the exam is truly active but gdsynth called it inactive (no referral)."
    if refer:
        return ("False referral: the exam has no enhancing lesion but gdsynth recommends "
                "gadolinium.")
    return ("Correctly not referred: the exam has no enhancing lesion and gdsynth called it "
            "inactive.")


def _volumes(rows: list[dict]) -> str:
    vols = sorted((_num(r.get("volume_mm3")) or 0.0 for r in rows), reverse=True)
    return ", ".join(f"{v:.0f}" for v in vols) + " mm³"


def caption(exam: str, model: str, truth_rows: list[dict], summary: dict, per_exam: dict,
            reference_rows: list[dict], focus: Focus | None = None,
            context: str = "phantom") -> str:
    """The figure caption (Markdown) for one exam, from data only.

    ``truth_rows``: the phantom's ``_lesions.tsv``; ``summary``: the exam's
    ``_desc-activity_summary.json``; ``per_exam``: its row of the evaluation's ``per_exam.tsv``;
    ``reference_rows``: its rows of the evaluation's ``lesions.tsv`` (one per reference lesion,
    ``detected`` by MSSEG matching); ``context``: what the exam is, in the first sentence.
    """
    truth = enhancing_truth(truth_rows)
    active = bool(truth)
    if active:
        s = "s" if len(truth) != 1 else ""
        truth_text = (f"truly **active**: {len(truth)} enhancing lesion{s} "
                      f"({_volumes(truth)})")
    else:
        truth_text = "truly **inactive**: no enhancing lesion"
    prob = _num(summary.get("probability_active"))
    refer = _flag(summary.get("refer_for_gadolinium"))
    decision = {True: "referred for gadolinium", False: "not referred",
                None: "no referral decision"}[refer]
    prob_text = "P(active) n/a" if prob is None else f"P(active) {prob:.3f}"
    n_ref = int(_num(per_exam.get("n_reference")) or 0)
    by_label = {str(r.get("label")): r for r in truth}  # truth volumes, not the evaluation grid's
    detected = [r for r in reference_rows if _flag(r.get("detected"))]
    missed = [by_label.get(str(r.get("source_label")), r) for r in reference_rows
              if not _flag(r.get("detected"))]
    n_pred = int(_num(per_exam.get("n_predicted")) or 0)
    n_fp = int(_num(per_exam.get("n_false_positive")) or 0)
    lines = [
        f"Review page of **{exam}** ({context}), model `{model}`. Phantom truth: {truth_text}. "
        f"gdsynth: {prob_text}, {decision}.",
    ]
    match = f"Lesion matching (MSSEG criteria): {len(detected)} of {n_ref} enhancing lesions detected"
    match += f", {len(missed)} missed ({_volumes(missed)})" if missed else ", none missed"
    match += (f"; {n_pred} detection{'s' if n_pred != 1 else ''}, "
              f"{n_fp} of them false positive{'s' if n_fp != 1 else ''}.")
    lines.append(match)
    if n_ref != len(truth):
        lines.append(f"(The evaluation counts {n_ref} reference lesions on its grid, the truth "
                     f"table {len(truth)}.)")
    lines.append(verdict(active, refer, len(detected)))
    if focus is not None:
        lines.append(f"The views are centred on {focus.text}.")
    return " ".join(lines) + "\n"


# --- files of a demo folder ----------------------------------------------------------------------

@dataclass(frozen=True)
class DemoFiles:
    bids: Path
    pred: Path
    evaluation: Path
    site: Path

    @classmethod
    def of(cls, demo: Path) -> DemoFiles:
        files = cls(demo / "bids", demo / "bids" / "derivatives" / "gdsynth", demo / "evaluation",
                    demo / "review")
        for path in (files.bids, files.pred, files.evaluation / "per_exam.tsv",
                     files.site / "index.html"):
            if not path.exists():
                sys.exit(f"{path}: missing; is {demo} the --out folder of 'gdsynth demo'? "
                         "(or pass --run-demo)")
        return files


def load_exam(files: DemoFiles, exam_id: str) -> dict:
    """Everything the caption and the focus need for one exam."""
    from gdsynth.io import read_tsv
    from gdsynth.io.bids import discover
    from gdsynth.phantom import truth_path

    exams = {e.id: e for e in discover(files.bids)}
    if exam_id not in exams:
        sys.exit(f"{files.bids}: no exam {exam_id}; exams: {', '.join(sorted(exams))}")
    exam = exams[exam_id]
    summaries = [p for p in files.pred.rglob(f"{exam_id}_desc-activity_summary.json")]
    if len(summaries) != 1:
        sys.exit(f"{files.pred}: expected one {exam_id}_desc-activity_summary.json, "
                 f"found {len(summaries)}")
    per_exam = [r for r in read_tsv(files.evaluation / "per_exam.tsv") if r["exam"] == exam_id]
    if len(per_exam) != 1 or per_exam[0].get("status") != "ok":
        sys.exit(f"{files.evaluation / 'per_exam.tsv'}: {exam_id} was not evaluated")

    def rows(name: str) -> list[dict]:
        return [r for r in read_tsv(files.evaluation / name) if r["exam"] == exam_id]

    return {
        "truth": read_tsv(truth_path(files.bids, exam, "lesions", ".tsv")),
        "summary": json.loads(summaries[0].read_text()),
        "per_exam": per_exam[0],
        "reference": rows("lesions.tsv"),
        "predicted": rows("predicted_lesions.tsv"),
    }


def demo_context(files: DemoFiles, exam_id: str) -> str:
    """``"phantom siteC, 2 mm, seed 1000; one of 4 demo exams"`` from the demo's own files."""
    from gdsynth.io import read_tsv

    parts = ["phantom"]
    subject = exam_id.split("_")[0]
    site = [r.get("site") for r in read_tsv(files.bids / "participants.tsv")
            if r.get("participant_id") == subject] if (files.bids / "participants.tsv").exists() \
        else []
    if site and site[0]:
        parts[0] += f" {site[0]}"
    cfg_path = files.bids / "derivatives" / "phantom" / "phantom_config.json"
    if cfg_path.exists():
        cfg = json.loads(cfg_path.read_text())
        resolution = (cfg.get("config") or {}).get("resolution")
        if resolution is not None:
            parts.append(f"{float(resolution):g} mm")
        if cfg.get("seed") is not None:
            parts.append(f"seed {cfg['seed']}")
    n = sum(r.get("status") == "ok" for r in read_tsv(files.evaluation / "per_exam.tsv"))
    return ", ".join(parts) + ("; the only demo exam" if n == 1 else f"; one of {n} demo exams")


def default_exam(files: DemoFiles) -> str:
    """The first evaluated exam that is truly active by the phantom truth (else the first one)."""
    from gdsynth.io import read_tsv
    from gdsynth.io.bids import discover
    from gdsynth.phantom import truth_path

    evaluated = [r["exam"] for r in read_tsv(files.evaluation / "per_exam.tsv")
                 if r.get("status") == "ok"]
    exams = {e.id: e for e in discover(files.bids)}
    for exam_id in sorted(evaluated):
        if enhancing_truth(read_tsv(truth_path(files.bids, exams[exam_id], "lesions", ".tsv"))):
            return exam_id
    print(f"no truly active exam among {', '.join(sorted(evaluated))}: showing the first",
          file=sys.stderr)
    return sorted(evaluated)[0]


# --- the browser ---------------------------------------------------------------------------------

def start_driver(width: int, height: int):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        sys.exit("Debian chromium/chromium-driver not installed (run 'make browser-deps' as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    profile = tempfile.mkdtemp(prefix="gdsynth-figure-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # the page area, exactly
                           {"width": width, "height": height, "deviceScaleFactor": 1,
                            "mobile": False})
    return driver, profile


def wait_for(driver, script: str, timeout: float) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.2)
    sys.exit(f"timed out after {timeout:.0f} s waiting for {script}")


def screenshot(site: Path, exam_id: str, focus: Focus | None, png: Path, *, width: int,
               height: int, timeout: float) -> None:
    """Open ``exam_id``'s page of the site (served on 127.0.0.1), centre it on ``focus`` and save
    the viewport as ``png``."""
    from gdsynth.io import atomic_write_bytes
    from gdsynth.review.serve import serve_folder

    driver, profile = start_driver(width, height)
    try:
        with serve_folder(site) as url:
            driver.get(url + "index.html")
            links = driver.find_elements("css selector", "#cohort tbody tr td a")
            pages = {a.text.strip(): a.get_attribute("href") for a in links}
            if exam_id not in pages:
                sys.exit(f"{site / 'index.html'}: no page for {exam_id}; pages: {sorted(pages)}")
            driver.get(pages[exam_id])
            wait_for(driver, "window.gdViewerReady === true || !!window.gdViewerError", timeout)
            error = driver.execute_script("return window.gdViewerError || null")
            if error:
                sys.exit(f"{pages[exam_id]}: the viewer failed: {error}")
            if focus is not None and focus.label is not None:
                rows = [r for r in driver.find_elements("css selector", "tr.lesion")
                        if r.find_element("css selector", "td").text.strip() == focus.label]
                if not rows:
                    sys.exit(f"{pages[exam_id]}: no lesion row with label {focus.label}")
                driver.execute_script("arguments[0].click();", rows[0])
            elif focus is not None and focus.centre is not None:
                driver.execute_script("gdViewer.goto(arguments[0]);", list(focus.centre))
            driver.execute_script("window.scrollTo(0, 0);")
            time.sleep(1.0)  # let NiiVue draw the moved crosshair
            atomic_write_bytes(png, driver.get_screenshot_as_png())
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def run_demo(args: argparse.Namespace) -> None:
    from gdsynth.cli.main import main

    argv = ["demo", "--out", str(args.demo), "--subjects", str(args.subjects), "--seed",
            str(args.seed), "--model", args.model, "--mc-samples", str(args.mc_samples)]
    print("gdsynth " + " ".join(argv), file=sys.stderr)
    if main(argv) != 0:
        sys.exit("gdsynth demo failed")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", type=Path, default=Path("demo-output"),
                   help="'gdsynth demo --out' folder (default demo-output)")
    p.add_argument("--run-demo", action="store_true", help="run 'gdsynth demo' into --demo first")
    p.add_argument("-n", "--subjects", type=int, default=4, help="demo exams (with --run-demo)")
    p.add_argument("--seed", type=int, default=1000, help="demo phantom seed (with --run-demo)")
    p.add_argument("--model", default="phantom", help="demo model (with --run-demo)")
    p.add_argument("--mc-samples", type=int, default=3, help="MC-dropout samples (with --run-demo)")
    p.add_argument("--exam", help="exam to show (default: the first truly active one)")
    p.add_argument("--png", type=Path, default=Path("docs/img/review.png"))
    p.add_argument("--caption", type=Path, default=Path("docs/img/review_caption.md"))
    p.add_argument("--size", default="1400x900", help="viewport WIDTHxHEIGHT in pixels")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the viewers")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.run_demo:
        run_demo(args)
    files = DemoFiles.of(args.demo)
    exam_id = args.exam or default_exam(files)
    data = load_exam(files, exam_id)
    model = (data["summary"].get("model") or {}).get("name") or args.model
    focus = choose_focus(data["truth"], data["predicted"])
    text = caption(exam_id, model, data["truth"], data["summary"], data["per_exam"],
                   data["reference"], focus, demo_context(files, exam_id))
    screenshot(files.site, exam_id, focus, args.png, width=width, height=height,
               timeout=args.timeout)
    from gdsynth.io import atomic_write_text

    atomic_write_text(args.caption, text)
    print(f"{args.png}\n{args.caption}:\n{text}")


if __name__ == "__main__":
    main()
