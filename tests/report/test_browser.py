"""The dashboard in a real browser: headless Chromium opens it from file://."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _report_helpers import EVIL_NAME, OpenPage

from nas.report import front_plot_points, pareto_info

pytestmark = pytest.mark.slow

# the arch id plotly bound to the i-th marker of a plot, and its trace's name
POINT = """([plot, i]) => {
  const p = document.querySelectorAll(`#${plot} .scatterlayer .point`)[i];
  const trace = p.closest('.trace').__data__[0].trace;
  const b = p.getBoundingClientRect();
  return {id: trace.text[p.__data__.i], trace: trace.name, x: b.x + b.width / 2,
          y: b.y + b.height / 2};
}"""


# the heatmap's selection outline (its other shape is the line before the reference arches)
RECTS = """() => document.getElementById('plot-heatmap').layout.shapes
  .filter(s => s.type === 'rect').map(s => s.x0)"""


def _points(page: OpenPage, plot: str) -> list[dict[str, Any]]:
    n = page.page.locator(f"#{plot} .scatterlayer .point").count()
    return [page.eval(POINT, [plot, i]) for i in range(n)]


def _isolated(
    points: list[dict[str, Any]], trace: str, skip: frozenset[str] = frozenset()
) -> tuple[int, dict[str, Any]]:
    """A marker of ``trace`` that no other arch's marker covers (a click selects the
    nearest point, and two arches can have the same costs), of an arch not in ``skip``."""
    for i, p in enumerate(points):
        if (
            p["trace"].startswith(trace)
            and p["id"] not in skip
            and all(
                q["id"] == p["id"] or abs(q["x"] - p["x"]) + abs(q["y"] - p["y"]) > 12
                for q in points
            )
        ):
            return i, p
    raise AssertionError(f"no isolated {trace} point")


def _click(page: OpenPage, plot: str, i: int, arch_id: str) -> None:
    page.page.wait_for_timeout(350)  # two clicks within 300 ms are plotly's double-click
    page.page.locator(f"#{plot} .scatterlayer .point").nth(i).click(force=True)
    page.page.wait_for_function("id => window.nasDashboard.selected === id", arg=arch_id)


def _selected_row(page: OpenPage) -> Any:
    return page.eval(
        "() => [...document.querySelectorAll('#front-table tr.selected')].map(r => r.dataset.arch)"
    )


def test_dashboard_in_chromium(browser: Any, quality_run: Path, tmp_path: Path) -> None:
    info = pareto_info(quality_run)
    page = OpenPage(browser, quality_run / "dashboard.html")
    try:
        assert page.eval("window.nasDashboard.errors") == []
        # names from users are text, not markup: no dialog opened, the title shows them
        assert page.dialogs == []
        assert page.page.locator("#run-title").text_content().startswith(EVIL_NAME)

        # every plotted trial is one marker: quality against latency, then memory
        points = _points(page, "plot-front")
        assert len(points) == front_plot_points(info) > 0
        with_costs = [t for t in info.trials if t.complete and t.peak_mem_mb is not None]
        refs = {r.trial for r in info.references}
        diamonds = sum(1 for t in with_costs if t.number in refs)
        assert refs and diamonds  # the reference arches are drawn on the plots
        assert (
            page.page.locator("#plot-cost .scatterlayer .point").count()
            == len(with_costs) + diamonds
        )
        trials_by_arch = {t.arch_id for t in info.trials}
        assert {p["id"] for p in points} <= trials_by_arch

        # the first front arch is selected on load, everywhere
        first = info.front[0].arch_id
        assert page.eval("window.nasDashboard.selected") == first
        assert page.page.locator("#selected-arch").text_content() == first
        assert _selected_row(page) == [first]

        # click a dominated feasible point: its details, no front row, no heatmap column (a
        # reference arch would have one)
        i, p = _isolated(points, "feasible", frozenset(r.arch_id for r in info.references))
        _click(page, "plot-front", i, p["id"])
        assert page.page.locator("#selected-arch").text_content() == p["id"]
        assert "dominated" in page.page.locator("#details .tag").text_content()
        assert _selected_row(page) == []
        assert page.eval(RECTS) == []

        # click a front point: table row, heatmap column, breakdown follow
        i, p = _isolated(points, "Pareto")
        _click(page, "plot-front", i, p["id"])
        rank = [f.arch_id for f in info.front].index(p["id"])
        assert page.page.locator("#selected-arch").text_content() == p["id"]
        assert _selected_row(page) == [p["id"]]
        assert page.eval(RECTS) == [rank - 0.5]
        # the stacked bars add up to the arch's latency per step (minus the fixed overhead)
        bd = info.breakdowns[rank]
        drawn = page.eval(
            "() => document.getElementById('plot-breakdown-ms').data"
            ".reduce((s, t) => s + t.y.reduce((a, b) => a + b, 0), 0)"
        )
        assert drawn + bd.overhead_ms == pytest.approx(bd.latency_ms_step, rel=1e-5)
        summary = page.page.locator("#breakdown-summary").text_content()
        assert "temporal" in summary and "Peak memory" in summary

        # the table sorts, and a row click selects
        page.page.locator("#front-table th", has_text="trial").click()
        trials = page.eval(
            "() => [...document.querySelectorAll('#front-table tbody tr')]"
            ".map(r => +r.cells[2].dataset.v)"
        )
        assert trials == sorted(trials) and len(trials) == len(info.front)
        page.page.locator("#front-table tbody tr").first.click()
        page.page.wait_for_function(
            "() => document.querySelector('#front-table tr.selected') !== null"
        )

        # the 3-objective view (WebGL) and back
        page.page.locator("#toggle-3d").click()
        page.page.wait_for_function(
            "() => document.querySelector('#plot-cost .gl-container') !== null"
        )
        page.page.locator("#toggle-3d").click()
        page.page.wait_for_function(
            "() => document.querySelector('#plot-cost .scatterlayer .point') !== null"
        )

        shot = tmp_path / "dashboard.png"
        page.page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 50_000
        assert page.errors == [] and page.dialogs == []
    finally:
        page.close()


@pytest.mark.parametrize("run", ["one_trial_run", "infeasible_run", "cost_run"])
def test_edge_cases_render(browser: Any, run: str, request: pytest.FixtureRequest) -> None:
    d: Path = request.getfixturevalue(run)
    info = pareto_info(d)
    page = OpenPage(browser, d / "dashboard.html")
    try:
        assert page.eval("window.nasDashboard.ready") is True
        points = _points(page, "plot-front")
        refs = sum(1 for t in info.trials if t.number in {r.trial for r in info.references})
        assert len(points) == front_plot_points(info) == len(info.trials) + refs + len(info.exact)
        if info.front:
            assert page.eval("window.nasDashboard.selected") == info.front[0].arch_id
            i, p = _isolated(points, "Pareto")
            _click(page, "plot-front", i, p["id"])
        else:  # nothing to select first; a click still selects the (infeasible) arch
            assert page.eval("window.nasDashboard.selected") is None
            assert "No arch on the front" in page.page.locator("#front-empty").text_content()
            i, p = _isolated(points, "infeasible")
            _click(page, "plot-front", i, p["id"])
            assert "over budget" in page.page.locator("#details .tag").text_content()
        assert page.eval("document.getElementById('plot-breakdown-ms').data.length") > 0
        assert page.errors == []
    finally:
        page.close()


def test_a_link_selects_its_arch(browser: Any, cost_run: Path) -> None:
    info = pareto_info(cost_run)
    last = info.front[-1].arch_id
    page = browser.new_page()
    try:
        page.goto((cost_run / "dashboard.html").resolve().as_uri() + f"#arch={last}")
        page.wait_for_function("window.nasDashboard && window.nasDashboard.ready")
        assert page.evaluate("window.nasDashboard.selected") == last
        assert page.locator("#front-table tr.selected").get_attribute("data-arch") == last
    finally:
        page.close()


# the rectangles of a plot's toolbar, plotting area, legend and axis titles, in page pixels
BOXES = """(plot) => {
  const div = document.getElementById(plot);
  const r = (sel) => [...div.querySelectorAll(sel)].map(e => {
    const b = e.getBoundingClientRect();
    return [b.left, b.top, b.right, b.bottom];
  }).filter(b => b[2] > b[0] && b[3] > b[1]);
  const d = div.getBoundingClientRect();
  return {div: [d.left, d.top, d.right, d.bottom], modebar: r('.modebar'),
          area: r('.cartesianlayer .bg, .nsewdrag'), legend: r('.legend'),
          titles: r('.g-xtitle text, .g-ytitle text')};
}"""


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_layout_comparison_and_commands(browser: Any, quality_run: Path) -> None:
    info = pareto_info(quality_run)
    page = OpenPage(browser, quality_run / "dashboard.html")
    try:
        for plot in ("plot-front", "plot-cost", "plot-heatmap", "plot-hv"):
            b = page.eval(BOXES, plot)
            assert b["modebar"], plot
            # the toolbar sits above the plotting area and the legend, never over them
            for bar in b["modebar"]:
                for other in b["area"] + b["legend"]:
                    assert not _overlap(bar, other), plot
            # axis titles (the hypervolume's included) are inside their plot, not cut
            for t in b["titles"]:
                assert t[0] >= b["div"][0] - 1 and t[1] >= b["div"][1] - 1, plot
        # the breakdown bars have no toolbar over their titles
        assert page.page.locator("#plot-breakdown-ms .modebar").count() == 0

        # the heatmap gives each choice of the space its own colour
        scale = page.eval("document.getElementById('plot-heatmap').data[0].colorscale")
        assert len({c for _, c in scale}) == len(info.heatmap.variants)
        legend = page.page.locator("#heatmap-legend .key").all_text_contents()
        assert set(legend) >= set(info.heatmap.op_kinds)  # tiny: one variant per op kind

        # copyable commands for the selected front arch
        first = info.front[0]
        cmds = page.page.locator("#commands code").all_text_contents()
        run = info.meta.run_dir
        arch = f"--arch {run}/{first.yaml} --space {run}/space.yaml"
        out = f"experiments/train/{first.arch_id}"
        assert cmds == [
            f"nas train {arch} --steps 2000 --out {out}",
            f"nas export {arch} --format coreml",
            f"nas generate {arch} --checkpoint {out} --prompt '3 moves left fast' "
            f"--out {first.arch_id}.mp4",
        ]
        page.page.locator("#commands button[data-cmd=train]").click()
        assert page.eval("window.nasDashboard.lastCopy") == cmds[0]

        # two arches side by side: pin one, select another
        assert len(info.front) >= 2
        second = info.front[1]
        page.page.locator("#pin-arch").click()
        page.eval(f"window.nasDashboard.select('{second.arch_id}')")
        table = page.page.locator("#compare")
        head = table.locator("tr").first.locator("td").all_text_contents()
        assert head == [first.arch_id, second.arch_id]
        diff = table.locator("tr.diff th").all_text_contents()
        differs = [
            g.name for i, g in enumerate(info.groups) if first.choices[i] != second.choices[i]
        ]
        assert set(differs) <= set(diff) and "latency" in diff
        # long choice keys wrap inside the card: the page never scrolls sideways
        assert page.eval("document.documentElement.scrollWidth <= window.innerWidth")
        page.page.locator("#pin-arch").click()  # compare with this one instead
        page.eval(f"window.nasDashboard.select('{first.arch_id}')")
        head = page.page.locator("#compare tr").first.locator("td").all_text_contents()
        assert head == [second.arch_id, first.arch_id]
        assert page.errors == [] and page.eval("window.nasDashboard.errors") == []
    finally:
        page.close()
