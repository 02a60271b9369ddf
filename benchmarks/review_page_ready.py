"""Review site: page-ready time of an exam page in headless chromium and the site's size per exam.

    python benchmarks/review_page_ready.py SITE [SITE ...] [--page exam-e001.html] [--repeat 2]
                                           [--profile] [--cpu]

Each SITE (a folder written by ``gdsynth review``) is served over http on 127.0.0.1 (the way
``gdsynth review --serve`` does) and, when its volumes are embedded, also opened from file://.
Page-ready time = ``performance.now()`` (ms since navigation start) when the viewer reports
ready (``window.gdViewerReady``), polled every 50 ms. ``--profile`` also prints, for each run,
the viewer's phases (``performance.measure`` entries ``gd:attach|read|image|layers <volume>``:
start and end in s since navigation). Load averages are printed with the times: timings taken on
a busy machine are not comparable; ``--cpu`` also prints the CPU seconds the browser's processes
used during each run, by process type (Linux /proc; less sensitive to other load than the time:
in headless chromium most of it is the GPU process running WebGL in software). Needs
/usr/bin/chromium + chromedriver.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gdsynth.review.serve import serve_folder  # noqa: E402
from tests.review.browser import start_driver, stop_driver  # noqa: E402


def page_ready_s(driver, url: str, timeout: float = 300.0, cpu: bool = False) -> float:
    driver.get("about:blank")
    time.sleep(0.5)
    before = browser_cpu_s(driver) if cpu else None
    driver.get(url)  # returns at once (page load strategy "none"); the poll below waits
    while driver.execute_script("return location.href") != url:
        time.sleep(0.05)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = driver.execute_script(
            "return [window.gdViewerReady === true, window.gdViewerError || null, performance.now()]")
        if state[1]:
            raise RuntimeError(f"{url}: {state[1]}")
        if state[0]:
            if before is not None:
                used = browser_cpu_s(driver)
                used.subtract(before)
                print(f"      browser CPU {sum(used.values()):.1f} s: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in used.most_common() if v >= 0.05))
            return state[2] / 1000
        time.sleep(0.05)
    raise TimeoutError(url)


PHASES = ("return performance.getEntriesByType('measure').filter(m => m.name.startsWith('gd:'))"
          ".map(m => [m.name.slice(3), m.startTime / 1000, (m.startTime + m.duration) / 1000])")


def print_phases(driver) -> None:
    for name, start, end in sorted(driver.execute_script(PHASES), key=lambda p: p[1]):
        print(f"      {start:7.2f} - {end:7.2f} s  {name}")


def browser_cpu_s(driver) -> collections.Counter:
    """CPU seconds (user + system) used so far by the chromedriver's process tree, by chromium
    process type (``--type=``: renderer, gpu-process, utility...; the browser process: browser)."""
    children = collections.defaultdict(list)
    stats = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        children[int(stat[1])].append(int(pid))
        stats[int(pid)] = (stat, cmd)
    out, todo = collections.Counter(), [driver.service.process.pid]
    while todo:
        pid = todo.pop()
        todo += children[pid]
        if pid in stats:
            stat, cmd = stats[pid]
            kind = re.search(r"--type=(\S+)", cmd)
            name = kind.group(1) if kind else ("browser" if "chromium" in cmd else "driver")
            out[name] += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return out


def load() -> str:
    return "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def site_size_mb(site: Path) -> dict[str, float]:
    return {d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) / 2**20
            for d in sorted((site / "data").iterdir()) if d.is_dir()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sites", nargs="+", type=Path)
    ap.add_argument("--page", default="exam-e001.html")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="print the viewer's phases of each run")
    ap.add_argument("--cpu", action="store_true", help="print the browser's CPU seconds of each run")
    args = ap.parse_args()
    driver = start_driver("none")
    driver.set_script_timeout(600)  # a busy page blocks the poll: that time counts, not fails
    try:
        for site in args.sites:
            sizes = site_size_mb(site)
            print(f"{site}: data per exam (MB): " + ", ".join(f"{k} {v:.1f}" for k, v in sizes.items()))
            embedded = (site / "data" / "e001" / "T1w.js").exists() or (
                site / "data" / "e001" / "volumes.js").exists()
            with serve_folder(site) as url:
                for n in range(args.repeat):
                    t = page_ready_s(driver, url + args.page, cpu=args.cpu)
                    print(f"  http    run {n + 1}: ready in {t:.2f} s ({load()})")
                    if args.profile:
                        print_phases(driver)
            if embedded:
                for n in range(args.repeat):
                    t = page_ready_s(driver, (site / args.page).resolve().as_uri(), cpu=args.cpu)
                    print(f"  file:// run {n + 1}: ready in {t:.2f} s ({load()})")
                    if args.profile:
                        print_phases(driver)
    finally:
        stop_driver(driver)


if __name__ == "__main__":
    main()
