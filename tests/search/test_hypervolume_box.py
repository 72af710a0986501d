"""The hypervolume's fixed box (issue 17 item 4): from the budgets and the all-none arch,
recorded in run.json, never decreasing, the same on the progress bar, in the summary and on
the dashboard."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from _search_helpers import TINY, tiny_overrides

from nas.results import HypervolumeBox, RunInfo, box_hypervolume, hypervolume_history
from nas.search import compose_config, run_search


def test_a_fixed_box_never_drops_where_the_feasible_range_does() -> None:
    # the second point widens the latency range: normalised over the range seen so far, the
    # first point's share shrinks and the bar's hv dropped; in a fixed box it cannot
    v = np.array([[2.0, 1.0], [1.0, 3.0]])
    feas = np.array([True, True])
    ranged = [hypervolume_history(v[: i + 1], feas[: i + 1])[-1] for i in range(2)]
    assert ranged[1] < ranged[0]
    box = HypervolumeBox(("a", "b"), (0.0, 0.0), (4.0, 4.0), ("x", "y"))
    fixed = hypervolume_history(v, feas, box)
    assert np.all(np.diff(fixed) >= 0) and fixed[-1] > fixed[0]
    # the fraction of the box: (4-2)*(4-1) + (2-1)*(4-3) = 7 of 16
    assert fixed[-1] == pytest.approx(7 / 16)
    assert box_hypervolume(v, box) == pytest.approx(7 / 16)


def test_box_bounds_and_round_trip() -> None:
    box = HypervolumeBox(("lat", "quality"), (1.0, None), (4.0, None), ("budget", "first"))
    assert not box.complete
    assert box.fill([2.0, float("inf")]) == box  # no proxy result yet: still waiting
    loss = box.fill([2.0, 0.8])
    assert loss.complete and loss.lower == (1.0, 0.0) and loss.upper == (4.0, 0.8)
    score = box.fill([2.0, -3.0])  # a score that is not a loss: one |reference| below it
    assert score.lower == (1.0, -6.0) and score.upper == (4.0, -3.0)
    assert HypervolumeBox.from_dict(json.loads(json.dumps(loss.to_dict()))) == loss
    # better than the ideal counts as the ideal: never above 1
    assert box_hypervolume(np.array([[0.0, -5.0]]), loss) == pytest.approx(1.0)
    # a budget below the cheapest arch: an empty box, no volume
    empty = HypervolumeBox(("lat",), (2.0,), (1.0,), ("budget",))
    assert box_hypervolume(np.array([[1.5]]), empty) == 0.0
    with pytest.raises(ValueError):
        HypervolumeBox(("a",), (0.0, 1.0), (1.0,), ("x",))


def test_a_real_run_records_its_box_and_its_hv_never_decreases(
    in_tmp: Path, tiny_tables: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nas.report import pareto_info
    from nas.search import Tracker

    seen: list[float] = []
    on_trial = Tracker.on_trial

    def record(self: Tracker, study, ft) -> None:  # type: ignore[no-untyped-def]
        on_trial(self, study, ft)
        m = re.search(r"hv=([0-9.]+)", self.summary())
        assert m is not None
        seen.append(float(m.group(1)))

    monkeypatch.setattr(Tracker, "on_trial", record)
    cfg, raw = compose_config(
        tiny_overrides(
            tiny_tables, "proxy=params", "sampler=random", "search.trials=24", "search.batch=4"
        )
    )
    res = run_search(TINY, cfg, raw, progress=False, log=lambda _m: None)
    assert len(seen) == 24
    assert all(b >= a for a, b in itertools.pairwise(seen))
    assert seen[-1] > 0

    info = RunInfo.load(res.run_dir)
    box = info.box
    assert box is not None and box.complete
    assert box.columns == ("latency_s_video", "quality")
    # latency: from the all-none arch (the first trial) to the budget of the run
    budget = info.require_settings().constraint("latency_s_video")
    assert budget is not None and box.upper[0] == budget.budget
    first = res.records[0]
    assert first.number == 0 and box.lower[0] == pytest.approx(first.latency_s_video)
    assert box.upper[1] == pytest.approx(first.quality)  # the all-none arch's proxy result
    raw_json = json.loads((res.run_dir / "run.json").read_text())
    assert raw_json["box"]["upper"][0] == budget.budget

    # the summary and the dashboard measure in the same box as the bar
    assert res.hypervolume == pytest.approx(seen[-1], abs=6e-4)  # the bar shows 3 decimals
    dash = pareto_info(res.run_dir)
    assert dash.box == box
    assert dash.hypervolume[-1] == pytest.approx(res.hypervolume)
    assert np.all(np.diff(dash.hypervolume) >= 0)


def test_the_bar_keeps_the_front_as_trials_arrive() -> None:
    from types import SimpleNamespace

    from nas.results import non_dominated
    from nas.search import Tracker

    rng = np.random.default_rng(3)
    v = rng.random((300, 2)).round(2)  # ties included
    feasible = rng.random(300) > 0.2
    box = HypervolumeBox(("a", "b"), (0.0, 0.0), (1.0, 1.0), ("x", "y"))
    for with_box in (box, None):
        tr = Tracker(SimpleNamespace(disable=True, update=lambda n: None))
        tr.box = with_box
        for n in range(len(v)):
            attrs = {"arch_id": f"a{n}", "costs": {"feasible": bool(feasible[n])}}
            ft = SimpleNamespace(
                number=n,
                state=SimpleNamespace(name="COMPLETE"),
                values=list(v[n]),
                user_attrs=attrs,
            )
            tr._add(ft)  # type: ignore[arg-type]
            if n % 50 == 49:
                pts = v[: n + 1][feasible[: n + 1]]
                want = pts[non_dominated(pts)]
                assert {tuple(p) for p in tr.front} == {tuple(p) for p in want}
                hv = hypervolume_history(v[: n + 1], feasible[: n + 1], with_box)[-1]
                assert float(tr.summary().split("hv=")[1]) == pytest.approx(hv, abs=6e-4)
