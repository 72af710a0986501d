"""The search over a space with a pipeline: the decode choice is a search dimension, latency
is end to end (or the UNet's alone with constraints.latency_scope=unet), and quality belongs
to the UNet (arches that differ only in their decoder share it)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from _tiny_table import tiny_table

from nas.errors import NasError
from nas.search import compose_config, run_search
from nas.space import load_arch, load_space

ROOT = Path(__file__).resolve().parents[2]
SPACE = str(ROOT / "search_spaces" / "tiny-pipeline.yaml")


@pytest.fixture(scope="module")
def pipe_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pipe_tables")
    tiny_table(load_space(SPACE)).save(folder / "cpu-ort")
    return folder


def _search(tables: Path, *overrides: str):  # type: ignore[no-untyped-def]
    cfg, raw = compose_config(["device=cpu-ort", f"device.table={tables}", *overrides])
    return run_search(SPACE, cfg, raw, progress=False, log=lambda _m: None)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_decoder_is_searched_and_latency_is_end_to_end(in_tmp: Path, pipe_tables: Path) -> None:
    res = _search(pipe_tables, "proxy=params", "sampler=random", "search.trials=40",
                  "constraints.latency_s=0.56")  # fmt: skip
    trials = _rows(res.run_dir / "trials.csv")
    assert {t["choice:decoder"] for t in trials} == {
        "vae/chunk1", "vae/chunk4", "taesd/chunk1", "taesd/chunk4"
    }  # fmt: skip
    # the reference arches: the all-none UNet with each decode choice first
    assert [t["choice:decoder"] for t in trials[:4]] == [
        "vae/chunk1", "vae/chunk4", "taesd/chunk1", "taesd/chunk4"
    ]  # fmt: skip
    assert len({t["arch_id"] for t in trials[:4]}) == 4
    for t in trials:
        parts = sum(float(t[c]) for c in ("latency_s_text", "latency_s_unet", "latency_s_decode"))
        assert math.isclose(float(t["latency_s_video"]), parts, rel_tol=1e-3)
        # the budget bounds the end-to-end latency
        assert (float(t["latency_s_video"]) <= 0.56) == (t["feasible"] == "true")
    # one proxy run per UNet: the other decoders reuse its quality
    assert len({t["quality"] for t in trials[:4]}) == 1
    assert [t["quality_status"] for t in trials[:4]] == ["evaluated"] + ["cached"] * 3
    space = load_space(res.run_dir / "space.yaml")
    for r in _rows(res.run_dir / "pareto.csv"):  # front arch files keep their decoder
        arch = load_arch(space, res.run_dir / r["arch_yaml"])
        assert arch.decoder == r["choice:decoder"] and arch.arch_id == r["arch_id"]


def test_latency_scope_unet_budgets_the_steps_only(in_tmp: Path, pipe_tables: Path) -> None:
    res = _search(pipe_tables, "experiment=cost_only", "search.trials=12",
                  "constraints.latency_s=0.48", "constraints.latency_scope=unet")  # fmt: skip
    trials = _rows(res.run_dir / "trials.csv")
    assert any(float(t["latency_s_video"]) > 0.48 and t["feasible"] == "true" for t in trials)
    for t in trials:
        assert (float(t["latency_s_unet"]) <= 0.48) == (t["feasible"] == "true")


def test_bad_latency_scope_is_one_clear_error() -> None:
    with pytest.raises(NasError, match=r"latency_scope='steps'; valid: video, unet"):
        compose_config(["constraints.latency_scope=steps"])
