"""The page without a browser: what it embeds, what it escapes, and `nas report`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _report_helpers import EVIL_NAME, EVIL_STUDY

from nas.cli import main
from nas.report import page_data, pareto_info, render_html, write_dashboard

FAKE_PLOTLY = "/* plotly.js stand-in */ window.Plotly = {};"


def _embedded(page: str) -> Any:
    m = re.search(r'<script type="application/json" id="nas-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def test_page_is_self_contained_and_embeds_the_data(cost_run: Path) -> None:
    info = pareto_info(cost_run)
    page = render_html(info)
    assert "* plotly.js v" in page  # inlined: the page needs no network
    assert not re.search(r"<script[^>]*\bsrc=", page) and "<link" not in page
    ours = render_html(info, plotlyjs=FAKE_PLOTLY)
    assert "http://" not in ours and "https://" not in ours
    assert page.count('<script type="application/json"') == 1
    got = _embedded(page)
    assert got["data"] == json.loads(json.dumps(page_data(info)))
    assert set(got["figs"]) == {"front", "hv", "heatmap"}  # cost only: no 3-objective card
    assert 'id="plot-cost"' not in page
    # the table: one row per front arch, each with its YAML link
    for f in info.front:
        assert f'<tr data-arch="{f.arch_id}">' in page
        assert f'href="archs/{f.arch_id}.yaml"' in page


def test_user_strings_are_escaped(quality_run: Path) -> None:
    info = pareto_info(quality_run)
    page = render_html(info, plotlyjs=FAKE_PLOTLY)
    for evil in (EVIL_NAME, EVIL_STUDY, "alert(1)</script>"):
        assert evil not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    # the JSON cannot close its script element; it still decodes to the original name
    assert _embedded(page)["data"]["name"] == EVIL_NAME
    # plotly renders a little HTML in titles and hover text: those are escaped too
    figs = json.dumps(_embedded(page)["figs"])
    assert "<script" not in figs and "<img" not in figs


def test_escaping_survives_hostile_csv_labels(cost_run: Path, tmp_path: Path) -> None:
    """A tampered trials.csv/pareto.csv cannot inject markup or a javascript: link."""
    d = tmp_path / "run"
    shutil.copytree(cost_run, d)
    arch = pareto_info(d).front[0].arch_id
    evil = "<script>alert(3)</script>"
    for name in ("trials.csv", "pareto.csv"):
        text = (d / name).read_text().replace(arch, evil)
        text = text.replace(f"archs/{evil}.yaml", "javascript:alert(4)")
        (d / name).write_text(text)
    info = pareto_info(d)
    assert info.front[0].arch_id == evil
    page = render_html(info, plotlyjs=FAKE_PLOTLY)
    assert "<script>alert(3)" not in page and "javascript:" not in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page  # shown, as text, unlinked
    assert info.front[0].yaml == ""


def test_banner_says_when_latency_is_estimated(quality_run: Path) -> None:
    info = pareto_info(quality_run)
    assert "provenance-banner" not in render_html(info, plotlyjs=FAKE_PLOTLY)
    est = replace(info, table=replace(info.table, sources={"estimated": 15, "measured": 4}))
    page = render_html(est, plotlyjs=FAKE_PLOTLY)
    assert 'id="provenance-banner"' in page
    assert "Latency and memory are estimated, not measured." in page
    assert "15 estimated" in page
    unknown = replace(info, table=replace(info.table, sources={}))
    assert "is unknown" in render_html(unknown, plotlyjs=FAKE_PLOTLY)


def test_quality_run_has_the_three_objective_view(quality_run: Path) -> None:
    info = pareto_info(quality_run)
    got = _embedded(render_html(info, plotlyjs=FAKE_PLOTLY))
    assert set(got["figs"]) == {"front", "cost", "hv", "heatmap"}
    front = got["figs"]["front"]
    names = [t["name"].split(" (")[0] for t in front["data"]]
    assert names == ["feasible", "infeasible", "Pareto front", "reference arches"]
    # the reference arches on every plot: both scatters, the hypervolume, the heatmap
    refs = {r.trial: r.label for r in info.references}
    for fig in (front, got["figs"]["cost"]):
        ref = fig["data"][-1]
        assert ref["texttemplate"] == [refs[n] for _, n in ref["customdata"]]
    hv = got["figs"]["hv"]["data"][-1]
    assert hv["name"] == "reference arches" and hv["x"] == sorted(refs)
    heat = got["figs"]["heatmap"]["data"][0]["x"]
    assert sum(x.startswith("ref ") for x in heat) == len(
        [r for r in info.references if r.arch_id not in {f.arch_id for f in info.front}]
    )
    # the latency budget is drawn on the latency axis, labelled in words
    shapes = front["layout"]["shapes"]
    assert any(s["xref"] == "x" and s["x0"] == 0.42 for s in shapes)
    labels = [a["text"] for a in front["layout"]["annotations"]]
    assert "latency budget 0.42 s" in labels and not any("latency_s" in t for t in labels)
    # the hypervolume's axis title is short; what it measures is under the card's title
    assert got["figs"]["hv"]["layout"]["yaxis"]["title"]["text"] == "hypervolume"


def test_the_page_composes_the_same_breakdown(cost_run: Path) -> None:
    """The script sums the embedded parts by (level, kind) exactly like BreakdownParts."""
    info = pareto_info(cost_run)
    data = page_data(info)
    parts = data["parts"]
    for f, b in zip(info.front, info.breakdowns, strict=True):
        a = data["archs"]["ids"].index(f.arch_id)
        idx = data["archs"]["choices"][a]
        cells = list(parts["backbone"])
        for g, c in enumerate(idx):
            cells += parts["choices"][g][c]
        acc: dict[tuple[str, str], list[float]] = {}
        for w, k, ms, mb in cells:
            key = (parts["wheres"][w], parts["kinds"][k])
            acc.setdefault(key, [0.0, 0.0])
            acc[key][0] += ms
            acc[key][1] += mb
        want = {(c.where, c.kind): [c.ms, c.weights_mb] for c in b.cells}
        assert acc.keys() == want.keys()
        for k, v in want.items():
            assert acc[k] == pytest.approx(v)
        assert data["archs"]["front"][a] == info.front.index(f)


def test_nas_report_regenerates_the_outputs(
    cost_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "run"
    shutil.copytree(cost_run, d)
    for name in ("dashboard.html", "trials.csv", "pareto.csv"):
        (d / name).unlink()
    assert main(["report", str(d)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == str(d / "dashboard.html")
    assert "40 trials" in out[0]
    for name in ("dashboard.html", "trials.csv", "pareto.csv"):
        assert (d / name).is_file()
    assert write_dashboard(d) == d / "dashboard.html"


@pytest.mark.parametrize("what", ["empty", "missing"])
def test_nas_report_on_a_non_run_dir_is_one_line(
    what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path if what == "empty" else tmp_path / "nope"
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "not a search run dir" in err or "not a directory" in err


def test_import_does_not_load_plotly() -> None:
    code = "import sys, nas, nas.report; assert 'plotly' not in sys.modules, 'plotly loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("run", ["quality_run", "cost_run", "infeasible_run"])
def test_figures_are_valid_plotly(run: str, request: pytest.FixtureRequest) -> None:
    """plotly.js ignores unknown attributes silently; plotly's validators do not."""
    import plotly.graph_objects as go

    from nas.report import figures

    info = pareto_info(request.getfixturevalue(run))
    for name, fig in figures(info).items():
        go.Figure(data=fig["data"], layout=fig["layout"])  # raises on a wrong attribute
        assert name in ("front", "cost", "hv", "heatmap")


def test_a_run_without_trials_renders(infeasible_run: Path, tmp_path: Path) -> None:
    """A run stopped before its first trial: csvs with a header only."""
    d = tmp_path / "run"
    shutil.copytree(infeasible_run, d)
    for name in ("trials.csv", "pareto.csv"):
        (d / name).write_text("trial\n")
    info = pareto_info(d)
    assert info.trials == () and info.front == () and info.hypervolume == ()
    page = render_html(info, plotlyjs=FAKE_PLOTLY)
    assert "No arch on the front yet" in page
    assert _embedded(page)["data"]["trials"]["number"] == []


def test_op_variants_get_their_own_shades(cost_run: Path) -> None:
    from nas.report import variant_colours

    kinds = ("none", "conv1d", "attn1d")
    variants = (
        "none",
        "conv1d(depthwise=true,kernel=3)",
        "conv1d(depthwise=false,kernel=3)",
        "conv1d(depthwise=true,kernel=5)",
        "attn1d(heads=8)",
    )
    colours = variant_colours(variants, kinds)
    assert len(set(colours.values())) == len(variants)
    assert colours["attn1d(heads=8)"] == "#ff7f0e"  # a lone variant keeps its op's colour
    info = pareto_info(cost_run)
    heat = replace(info.heatmap, op_kinds=kinds, variants=variants)
    page = render_html(replace(info, heatmap=heat), plotlyjs=FAKE_PLOTLY)
    legend = page[page.index('id="heatmap-legend"') :].split("</div>", 1)[0]
    assert "conv1d(depthwise=true,kernel=5)" in legend and ">attn1d<" in legend
