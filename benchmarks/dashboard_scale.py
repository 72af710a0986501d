"""How fast a big run's dashboard renders and becomes interactive in headless Chromium.

Builds a cost-only search run of the default space (random sampler; or takes one with
--run-dir), writes its dashboard, then opens it from file:// in headless Chromium several times,
each in a fresh browser context, and measures:

  plotly.js ready   navigation start -> the page's own script starts (plotly.js parsed and run)
  interactive       -> the main scatter is drawn and wired, the first arch selected
  click->selected   a click on a trial of the cloud until the page has selected its arch
  TTI               wall time from navigation until that click has selected the arch
  all drawn         -> every figure is drawn

for the page as written (trial clouds over GL_THRESHOLD points drawn with WebGL) and, for
comparison, the same page with every trial as an SVG marker. Prints medians over --repeats.

    python benchmarks/dashboard_scale.py [--trials 5000] [--run-dir DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nas.report import GL_THRESHOLD, pareto_info, render_html

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def build_run(trials: int, where: Path) -> Path:
    from nas.search import compose_config, run_search

    cfg, raw = compose_config(
        [
            "experiment=cost_only",
            "sampler=random",
            f"search.trials={trials}",
            f"search.runs_dir={where}",
        ]
    )
    t0 = time.perf_counter()
    res = run_search(ROOT / "search_spaces" / "temporal.yaml", cfg, raw, new=True)
    print(f"built a {trials}-trial run in {time.perf_counter() - t0:.0f} s: {res.run_dir}")
    return res.run_dir


def measure(browser: Any, page_path: Path) -> dict[str, float]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.perf_counter()
    page.goto(page_path.resolve().as_uri(), wait_until="commit")
    page.wait_for_function("window.nasDashboard && window.nasDashboard.interactive", timeout=60_000)
    first = page.evaluate("window.nasDashboard.selected")
    # click the median-latency trial of the feasible cloud (WebGL or SVG alike), by position
    where = page.evaluate(
        """() => {
      const gd = document.getElementById('plot-front'), fl = gd._fullLayout;
      const tr = gd.data[0], r = gd.getBoundingClientRect();
      const order = Array.from(tr.x.keys()).sort((a, b) => tr.x[a] - tr.x[b]);
      const k = order[Math.floor(order.length / 2)];
      return {x: r.left + fl.xaxis._offset + fl.xaxis.l2p(tr.x[k]),
              y: r.top + fl.yaxis._offset + fl.yaxis.l2p(tr.y[k])};
    }"""
    )
    t1 = time.perf_counter()
    page.mouse.click(where["x"], where["y"])
    page.wait_for_function(
        "first => window.nasDashboard.selected && window.nasDashboard.selected !== first",
        arg=first,
        timeout=60_000,
    )
    t2 = time.perf_counter()
    page.wait_for_function("window.nasDashboard.ready", timeout=60_000)
    timings = page.evaluate("window.nasDashboard.timings")
    ctx.close()
    if errors:
        raise SystemExit(f"page errors: {errors[:3]}")
    return {
        "plotly.js ready": timings["start"] / 1e3,
        "interactive": timings["interactive"] / 1e3,
        "click->selected": t2 - t1,
        "TTI": t2 - t0,
        "all drawn": timings["ready"] / 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, help="an existing run dir (default: build one)")
    ap.add_argument("--trials", type=int, default=5000, help="trials of the built run")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="dashboard_scale-"))
    run = args.run_dir or build_run(args.trials, tmp)

    t0 = time.perf_counter()
    info = pareto_info(run)
    t1 = time.perf_counter()
    pages = {
        f"as written (WebGL above {GL_THRESHOLD} points)": render_html(info),
        "all SVG markers": render_html(info, gl_threshold=10**9),
    }
    t2 = time.perf_counter()
    print(
        f"run: {len(info.trials)} trials, {info.feasible} feasible, front {len(info.front)}; "
        f"pareto_info {t1 - t0:.2f} s, render_html {(t2 - t1) / 2:.2f} s, "
        f"page {len(next(iter(pages.values()))) / 1e6:.1f} MB; {os.cpu_count()} CPUs"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        print(f"Chromium {browser.version}, headless, software WebGL (SwiftShader)")
        for label, html in pages.items():
            path = tmp / f"{abs(hash(label))}.html"
            path.write_text(html, encoding="utf-8")
            measure(browser, path)  # warm-up: the OS file cache, Chromium's first start
            rows = [measure(browser, path) for _ in range(args.repeats)]
            print(f"\n{label}: median of {args.repeats} (min-max), seconds")
            for k in rows[0]:
                vals = [r[k] for r in rows]
                print(
                    f"  {k:<16} {statistics.median(vals):6.2f}  ({min(vals):.2f}-{max(vals):.2f})"
                )
        browser.close()


if __name__ == "__main__":
    main()
