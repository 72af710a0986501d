"""The network rows (call, glue): what a whole UNet runs outside its blocks, and how the cost
model counts them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from nas.cost import CostModel, Table, TableRow, call_row, glue_row, rows_for_space, unet_row
from nas.space import load_space, sample_arch
from profilers import backbone_configs, build_row_module, glue_pairs

TINY = str(Path(__file__).resolve().parents[2] / "search_spaces" / "tiny.yaml")


@pytest.fixture(scope="module")
def space() -> Any:
    return load_space(TINY)


def test_glue_pairs_are_the_unets_own_concatenations(space: Any, monkeypatch: Any) -> None:
    """Every (hidden, skip) concatenation the VideoUNet runs, in order, is one the glue row
    runs, with the same shapes."""
    from nas.model import build_video_unet

    g = space.geometry
    seen: list[tuple[int, int, int, int]] = []
    real_cat = torch.cat

    def spy(tensors: Any, dim: int = 0, **kw: Any) -> torch.Tensor:
        if dim == 1 and len(tensors) == 2 and tensors[0].ndim == 4:
            a, b = tensors
            seen.append((a.shape[1], b.shape[1], a.shape[2], a.shape[3]))
        return real_cat(tensors, dim=dim, **kw)

    model = build_video_unet(space, load_weights=False).eval()
    x = torch.randn(1, g.latent_channels, g.frames, g.latent_height, g.latent_width)
    monkeypatch.setattr(torch, "cat", spy)
    with torch.no_grad():
        model(x, torch.tensor([10]), torch.randn(1, g.text_length, g.text_dim))
    monkeypatch.undo()
    pairs = glue_pairs(space.backbone.config, g.latent_height, g.latent_width)
    assert seen == pairs and len(pairs) >= 3
    built = build_row_module(glue_row(space, "fp32"), backbones=backbone_configs(space))
    with torch.no_grad():
        outs = built.module(*built.inputs)
    assert tuple(outs[0].shape) == tuple(x.shape)  # the UNet's output, unfolded
    cats = outs[4:]
    assert [tuple(c.shape[1:]) for c in cats] == [(h + s, y, z) for h, s, y, z in pairs]
    assert all(c.shape[0] == g.effective_batch * g.frames for c in cats)


def _table(space: Any, call_ms: float | None, glue_ms: float | None, session_mb: float) -> Table:
    """Every block row 10 ms and 5 MB over its 1 MiB of weights; the network rows as given."""
    t = Table({"device": {"name": "cpu-ort", "precision": "fp32", "memory_budget_mb": 1e6}})
    for spec in rows_for_space(space, "fp32"):
        if spec.is_network:
            continue
        t.put(TableRow(spec, "measured", 9.0, 10.0, 11.0, 5, peak_mem_mb=6.0, weight_bytes=2**20))
    if call_ms is not None:
        spec = call_row("fp32")
        t.put(TableRow(spec, "measured", call_ms, call_ms, call_ms, 5, peak_mem_mb=session_mb))
    if glue_ms is not None:
        spec = glue_row(space, "fp32")
        t.put(TableRow(spec, "measured", glue_ms, glue_ms, glue_ms, 5, peak_mem_mb=3.0))
    return t


def test_cost_model_counts_glue_once_and_calls_per_network(space: Any) -> None:
    import numpy as np

    arch = sample_arch(space, np.random.default_rng(3))
    old = CostModel(space, _table(space, None, None, 0.0))
    new = CostModel(space, _table(space, 0.5, 4.0, 2.0))
    blocks = round(old.evaluate(arch).latency_ms_step / 10.0)  # rows the arch runs through
    assert old.evaluate(arch).latency_ms_step == pytest.approx(10.0 * blocks)
    # each block row loses its own call (0.5 ms); the network adds its glue (with one call)
    assert new.evaluate(arch).latency_ms_step == pytest.approx(9.5 * blocks + 4.0)
    assert new.overhead_ms == pytest.approx(4.0) and new.call_ms == pytest.approx(0.5)
    b = new.breakdown(arch)
    assert sum(c.ms for c in b.cells) + b.overhead_ms == pytest.approx(b.latency_ms_step)
    # the session's memory is counted once, not in every block's working set
    assert new.overhead_mb == pytest.approx(2.0) and new.session_mb == pytest.approx(2.0)
    assert new.evaluate(arch).peak_mem_mb == pytest.approx(old.evaluate(arch).peak_mem_mb)
    assert not new.notes


def test_a_table_without_network_rows_loads_with_a_note(space: Any) -> None:
    model = CostModel(space, _table(space, None, None, 0.0))
    assert model.overhead_ms == 0.0 and model.call_ms == 0.0
    (note,) = model.notes
    assert "no glue and no call row" in note
    assert f"nas profile --device cpu-ort --space {space.source}" in note
    only_call = CostModel(space, _table(space, 0.5, None, 1.0))
    assert "no glue row" in only_call.notes[0] and only_call.overhead_ms == pytest.approx(0.5)


def test_an_estimated_call_row_is_not_taken_out(space: Any) -> None:
    t = _table(space, 0.5, 4.0, 2.0)
    spec = call_row("fp32")
    t.put(replace(t.rows[spec.key], source="estimated"))
    model = CostModel(space, t)
    assert model.call_ms == 0.0 and model.session_mb == 0.0 and model.overhead_ms == 4.0


def test_profile_adds_only_the_network_rows_to_an_old_table(space: Any, tmp_path: Path) -> None:
    """`nas profile` on a table made before the network rows measures just those two."""
    from test_runner import FakeProfiler  # type: ignore[import-not-found]

    from profilers import TimingProtocol, get_device, profile_space

    device = get_device("cpu-ort")
    old = _table(space, None, None, 0.0)
    prof = FakeProfiler()
    old.meta["versions"] = prof.versions()
    old.save(tmp_path)
    fast = TimingProtocol(warmup=0, min_repeats=1, max_repeats=1, memory=False)
    rep = profile_space(space, device, tmp_path, protocol=fast, profiler=prof, progress=False)
    # the two network rows, and the backbone alone as one network (ONNX Runtime measures it)
    want = [glue_row(space, "fp32").key, call_row("fp32").key, unet_row(space, "fp32").key]
    assert sorted(prof.calls) == sorted(want)
    assert rep.kept == len(old.rows)
    assert not CostModel(space, Table.load(tmp_path)).notes


def test_the_unet_row_measures_the_whole_network_memory(space: Any) -> None:
    """The backbone alone, measured as one network: its peak beyond the model's figure for it
    is memory the runtime holds for a whole network; added once to every arch's peak."""
    import numpy as np

    t = _table(space, 0.5, 4.0, 2.0)
    t.meta["backend"] = "onnxruntime"
    without = CostModel(space, t)
    assert without.network_mb == 0.0 and without.unet_residual_ms is None
    assert any("no unet row" in n for n in without.notes)
    none = np.zeros((1, len(space.groups)), dtype=np.int64)  # every group's first choice: none
    backbone_peak = float(without.evaluate_indices(none)["peak_mem_mb"][0])
    backbone_ms = float(without.evaluate_indices(none)["latency_ms_step"][0])
    spec = unet_row(space, "fp32")
    t.put(TableRow(spec, "measured", 100.0, 100.0, 100.0, 5, peak_mem_mb=backbone_peak + 30.0))
    model = CostModel(space, t)
    assert model.network_mb == pytest.approx(30.0) and not model.notes
    assert model.unet_residual_ms == pytest.approx(100.0 - backbone_ms)
    arch = sample_arch(space, np.random.default_rng(5))
    assert model.evaluate(arch).peak_mem_mb == pytest.approx(
        without.evaluate(arch).peak_mem_mb + 30.0
    )
    # latency: the backbone is anchored on its own measurement, so the all-none arch is
    # predicted at the unet row's 100 ms and every arch moves by the same residual
    assert float(model.evaluate_indices(none)["latency_ms_step"][0]) == pytest.approx(100.0)
    assert model.evaluate(arch).latency_ms_step == pytest.approx(
        without.evaluate(arch).latency_ms_step + 100.0 - backbone_ms
    )
