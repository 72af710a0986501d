"""ParetoInfo: the numbers the dashboard draws, checked against the run's own files."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from _report_helpers import EVIL_NAME, EVIL_STUDY

from nas.cost import CostModel, Table
from nas.errors import NasError
from nas.report import ParetoInfo, pareto_info, variant_colours
from nas.results import hypervolume_history, non_dominated
from nas.space import load_arch, load_space


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def quality(quality_run: Path) -> ParetoInfo:
    return pareto_info(quality_run)


@pytest.fixture(scope="module")
def cost(cost_run: Path) -> ParetoInfo:
    return pareto_info(cost_run)


def test_metadata_and_provenance(quality: ParetoInfo, quality_run: Path) -> None:
    m = quality.meta
    assert (m.name, m.study) == (EVIL_NAME, EVIL_STUDY)  # kept verbatim; the page escapes
    assert m.run_dir == str(quality_run.resolve())
    assert (m.space_name, m.space_size, m.device, m.sampler, m.proxy) == (
        "tiny",
        216,
        "cpu-ort",
        "random",
        "params",
    )
    assert m.status == "complete" and m.trials_target == 30
    assert m.created and m.trial_seconds > 0
    assert [(o.name, o.column, o.unit) for o in quality.objectives] == [
        ("latency", "latency_s_video", "s"),
        ("quality", "quality", "-log(1+temporal params)"),  # params' value: not a loss
    ]
    assert {(c.name, c.column, c.budget) for c in quality.constraints} == {
        ("latency_s", "latency_s_video", 0.42),
        ("memory_mb", "peak_mem_mb", 100.0),  # the table's device budget
    }
    # the hand-made table is all measured: no banner
    assert quality.table.sources == {"measured": 19}
    assert quality.table.known and not quality.table.estimated
    assert quality.notes == ()


def test_estimated_flag() -> None:
    from nas.report import TableInfo

    def info(sources: dict[str, int]) -> TableInfo:
        return TableInfo("", "d", "", "", sources, "p50", "", {})

    assert not info({"measured": 4}).estimated
    assert not info({"measured": 4, "failed": 1}).estimated  # failed rows carry no numbers
    assert info({"measured": 4, "estimated": 1}).estimated
    assert info({"published": 2}).unmeasured == {"published": 2}
    assert not info({}).known


def test_trials_match_trials_csv(quality: ParetoInfo, quality_run: Path) -> None:
    rows = _rows(quality_run / "trials.csv")
    assert len(quality.trials) == len(rows) == 30
    assert [t.number for t in quality.trials] == sorted(int(r["trial"]) for r in rows)
    by = {int(r["trial"]): r for r in rows}
    for t in quality.trials:
        r = by[t.number]
        assert t.arch_id == r["arch_id"] and t.state == r["state"]
        assert t.feasible == (r["feasible"] == "true")
        assert t.latency_s_video == pytest.approx(float(r["latency_s_video"]))
        assert t.peak_mem_mb == pytest.approx(float(r["peak_mem_mb"]))
        assert (t.quality is None) == (r["quality"] == "")
        assert t.quality_status == r["quality_status"]
        # infeasible arches skip the proxy
        assert t.feasible or t.quality is None
        assert len(t.indices) == len(quality.groups) and -1 not in t.indices
    assert quality.feasible == sum(r["feasible"] == "true" for r in rows)
    assert 0 < quality.feasible < 30  # the budget bites, so both kinds are drawn
    assert sum(quality.states.values()) == 30


@pytest.mark.parametrize("which", ["quality", "cost"])
def test_front_is_the_non_dominated_feasible_arches(
    which: str, request: pytest.FixtureRequest
) -> None:
    info: ParetoInfo = request.getfixturevalue(which)
    run = Path(info.meta.run_dir)
    cols = [o.column for o in info.objectives]
    feasible: dict[str, list[float]] = {}
    for t in info.trials:
        if t.complete and t.feasible and t.arch_id not in feasible:
            feasible[t.arch_id] = [float(t.value(c)) for c in cols]  # type: ignore[arg-type]
    ids = list(feasible)
    mask = non_dominated(np.array(list(feasible.values())))
    expected = {a for a, m in zip(ids, mask, strict=True) if m}
    assert {f.arch_id for f in info.front} == expected
    assert [f.arch_id for f in info.front] == [r["arch_id"] for r in _rows(run / "pareto.csv")]
    # best first by the first objective; values in objective order; arch files exist
    firsts = [f.values[0] for f in info.front]
    assert firsts == sorted(firsts)
    space = load_space(run / "space.yaml")
    for f in info.front:
        assert list(f.values) == pytest.approx(feasible[f.arch_id])
        assert f.yaml == f"archs/{f.arch_id}.yaml"
        arch = load_arch(space, run / f.yaml)
        assert arch.arch_id == f.arch_id
        assert list(f.choices) == [arch.choice(g.slots[0]).key for g in space.groups]


def test_breakdowns_sum_to_the_arch_totals(cost: ParetoInfo) -> None:
    run = Path(cost.meta.run_dir)
    space = load_space(run / "space.yaml")
    model = CostModel(space, Table.load(cost.table.path))
    assert cost.parts is not None and len(cost.breakdowns) == len(cost.front) > 0
    for f, b in zip(cost.front, cost.breakdowns, strict=True):
        assert b.arch_id == f.arch_id
        est = model.evaluate(load_arch(space, run / f.yaml))
        # latency: the cells plus the fixed overhead are the arch's latency per step
        assert sum(c.ms for c in b.cells) + b.overhead_ms == pytest.approx(
            est.latency_ms_step, rel=1e-9
        )
        assert b.latency_ms_step == pytest.approx(est.latency_ms_step, rel=1e-5)  # csv: 6 digits
        assert b.backbone_ms + b.temporal_ms == pytest.approx(b.latency_ms_step - b.overhead_ms)
        # memory: the weights are additive; peak = weights + activations + overhead
        assert sum(c.weights_mb for c in b.cells) == pytest.approx(est.weights_mb, rel=1e-9)
        assert b.activation_mb > 0
        assert b.weights_mb + b.activation_mb + b.overhead_mb == pytest.approx(b.peak_mem_mb)
        # the page's breakdown is the cost model's, cell for cell (tests/cost/test_breakdown.py
        # checks the cells against the per-slot figures)
        assert b == model.breakdown(load_arch(space, run / f.yaml))
        ops = {c.kind for c in b.cells if c.temporal}
        assert ops == {op for op, n in load_arch(space, run / f.yaml).op_counts().items() if n} - {
            "none"
        }
        # one cell per (level, kind), levels in execution order
        keys = [(c.where, c.kind) for c in b.cells]
        assert len(keys) == len(set(keys))
        order = [cost.parts.wheres.index(c.where) for c in b.cells]
        assert order == sorted(order)
        assert {c.kind for c in b.cells if not c.temporal} >= {"resnet", "conv_in", "conv_out"}


def test_heatmap_is_the_front_choices(cost: ParetoInfo) -> None:
    h = cost.heatmap
    assert h.groups == tuple(g.name for g in cost.groups)
    n = len(cost.front)
    assert h.arch_ids[:n] == tuple(f.arch_id for f in cost.front)
    # then the reference arches not on the front, labelled, with their trials' choices
    on_front = {f.arch_id for f in cost.front}
    refs = [r for r in cost.references if r.arch_id not in on_front]
    assert refs and h.arch_ids[n:] == tuple(r.arch_id for r in refs)
    assert h.references == ("",) * n + tuple(r.label for r in refs)
    by_number = {t.number: t for t in cost.trials}
    for j, r in enumerate(refs, start=n):
        t = by_number[r.trial]
        assert t.arch_id == r.arch_id
        assert [h.choices[i][j] for i in range(len(h.groups))] == [
            t.choices[g.name] for g in cost.groups
        ]
    assert len(h.ops) == len(h.groups) and all(len(r) == len(h.arch_ids) for r in h.ops)
    # every choice of the space has its own colour, grouped by op kind
    assert set(h.variants) == {c for g in cost.groups for c in g.choices}
    colours = variant_colours(h.variants, h.op_kinds)
    assert len(set(colours.values())) == len(h.variants)
    for j, f in enumerate(cost.front):
        for i in range(len(h.groups)):
            assert h.choices[i][j] == f.choices[i]
            assert h.ops[i][j] == f.choices[i].split("(")[0]
            assert h.ops[i][j] in h.op_kinds
    assert h.op_kinds[0] == "none"
    assert h.where == tuple(g.where for g in cost.groups)
    assert h.where[0] == "down.0"


def test_a_cost_only_run_shows_its_exact_front(cost: ParetoInfo, quality: ParetoInfo) -> None:
    assert quality.exact == ()  # no exact front with a proxy in the objectives
    # the all-none arch alone: the cheapest on both costs, and the sampled front reaches it
    assert [e.arch_id for e in cost.exact] == [f.arch_id for f in cost.front]
    e, f = cost.exact[0], cost.front[0]
    assert e.values["peak_mem_mb"] == pytest.approx(f.peak_mem_mb, rel=1e-5)


def test_reference_arches_are_the_spaces_first_trials(cost: ParetoInfo) -> None:
    labels = [r.label for r in cost.references]
    assert labels[0] == "none" and set(labels) >= {"conv1d", "attn1d"}
    assert [r.trial for r in cost.references] == list(range(len(labels)))  # tried first


def test_hypervolume_history(cost: ParetoInfo, quality: ParetoInfo) -> None:
    for info in (cost, quality):
        hv = np.array(info.hypervolume)
        assert len(hv) == len(info.trials)
        assert np.all(np.diff(hv) >= -1e-12) and hv[-1] > 0
        cols = [o.column for o in info.objectives]
        v = np.array(
            [[math.inf if t.value(c) is None else t.value(c) for c in cols] for t in info.trials],
            dtype=float,
        )
        feas = np.array([t.complete and t.feasible for t in info.trials])
        # measured in the run's box, as the search measured it
        assert info.box is not None and info.box.complete
        assert hv == pytest.approx(hypervolume_history(v, feas, info.box))
        assert hv[-1] <= 1.0 + 1e-9


def test_edge_cases(one_trial_run: Path, infeasible_run: Path) -> None:
    one = pareto_info(one_trial_run)
    assert len(one.trials) == 1 and len(one.front) == 1 and len(one.breakdowns) == 1
    # the one trial is the all-none arch, the cheapest of the space on both costs: the box's
    # ideal corner, so it dominates the whole box
    assert one.box is not None and one.box.complete
    assert one.front[0].values and one.hypervolume == pytest.approx((1.0,))
    none = pareto_info(infeasible_run)
    assert len(none.trials) == 6 and none.feasible == 0
    assert none.front == () and none.breakdowns == () and none.heatmap.arch_ids == ()
    assert none.hypervolume == (0.0,) * 6
    assert none.parts is not None  # any clicked arch still gets its breakdown


def test_a_run_dir_without_a_box_normalises_over_the_feasible_range(
    cost_run: Path, tmp_path: Path
) -> None:
    """Run dirs written before the box was recorded still load, measured as they were."""
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(cost_run, old)
    raw = json.loads((old / "run.json").read_text())
    raw.pop("box")
    (old / "run.json").write_text(json.dumps(raw))
    info = pareto_info(old)
    assert info.box is None
    cols = [o.column for o in info.objectives]
    v = np.array([[t.value(c) or math.inf for c in cols] for t in info.trials], dtype=float)
    feas = np.array([t.complete and t.feasible for t in info.trials])
    assert info.hypervolume == pytest.approx(tuple(hypervolume_history(v, feas)))


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(NasError, match="not a search run dir"):
        pareto_info(tmp_path)
    with pytest.raises(NasError, match="not a directory"):
        pareto_info(tmp_path / "missing")


def test_missing_trials_csv_names_the_fix(cost_run: Path, tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "run"
    shutil.copytree(cost_run, d)
    (d / "trials.csv").unlink()
    with pytest.raises(NasError, match=r"no trials.csv; regenerate the outputs with: nas report"):
        pareto_info(d)


def test_missing_table_degrades_to_a_note(cost_run: Path, tmp_path: Path) -> None:
    import json
    import shutil

    d = tmp_path / "run"
    shutil.copytree(cost_run, d)
    raw = json.loads((d / "run.json").read_text())
    raw["table"]["path"] = str(tmp_path / "gone")
    raw["settings"]["table"] = str(tmp_path / "gone")
    (d / "run.json").write_text(json.dumps(raw))
    info = pareto_info(d)
    assert info.parts is None and info.breakdowns == ()
    assert len(info.notes) == 1 and "no per-block breakdown" in info.notes[0]
    # the budgets still come from run.json's settings (the device budget resolved there)
    assert {c.name for c in info.constraints} == {"latency_s", "memory_mb"}
    assert len(info.front) == len(pareto_info(cost_run).front)
