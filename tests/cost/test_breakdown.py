"""CostModel.breakdown: the one source of per-block costs, consistent with evaluate()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas.cost import CostModel, Table
from nas.space import SearchSpace, arch_indices, sample_arch


def test_breakdown_agrees_with_evaluate(tiny_space: SearchSpace, tiny_tables: Path) -> None:
    table = Table.load(tiny_tables / "cpu-ort")
    model = CostModel(space=tiny_space, table=table, overhead_ms=2.5, overhead_mb=3.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = sample_arch(tiny_space, rng)
        e = model.evaluate(arch)
        b = model.breakdown(arch)
        assert b.arch_id == arch.arch_id
        assert sum(c.ms for c in b.cells) + b.overhead_ms == pytest.approx(e.latency_ms_step)
        assert b.latency_ms_step == pytest.approx(e.latency_ms_step)
        assert b.latency_s_video == pytest.approx(b.steps * b.latency_ms_step / 1e3)
        assert b.steps == tiny_space.geometry.steps
        assert sum(c.weights_mb for c in b.cells) == pytest.approx(e.weights_mb)
        assert b.weights_mb + b.activation_mb + b.overhead_mb == pytest.approx(e.peak_mem_mb)
        assert sum(b.per_stage_ms.values()) == pytest.approx(b.backbone_ms + b.temporal_ms)
        assert list(b.per_stage_ms) == ["in", "down", "mid", "up", "out"]
        # the parts the dashboard composes in the browser give the same cells
        assert model.parts.compose(arch_indices(tiny_space, arch)) == b.cells
        # temporal cells are exactly the per-slot latencies, summed by level
        per_level: dict[str, float] = {}
        for s in tiny_space.slots:
            w = f"{s.stage}.{s.level}"
            per_level[w] = per_level.get(w, 0.0) + e.per_slot_ms[s.name]
        for w, ms in per_level.items():
            got = sum(c.ms for c in b.cells if c.temporal and c.where == w)
            assert got == pytest.approx(ms)


def test_compose_checks_the_number_of_groups(tiny_space: SearchSpace, tiny_tables: Path) -> None:
    model = CostModel(tiny_space, Table.load(tiny_tables / "cpu-ort"))
    with pytest.raises(ValueError, match="choice indices"):
        model.parts.compose([0])
