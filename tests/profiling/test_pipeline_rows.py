"""Pipeline rows (text encoder, decoders) measured for real, and the whole pipeline validated
against the cost model's per-video latency (tiny configs, random weights, ONNX Runtime and
PyTorch on this CPU; Core ML conversion with an estimated latency)."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cost import CostModel, Table, rows_for_space
from nas.space import enumerate_arches, load_space
from profilers import TimingProtocol, build_row_module, get_device, pipeline_parts, profile_space

ROOT = Path(__file__).resolve().parents[2]
SPACE = ROOT / "search_spaces" / "tiny-pipeline.yaml"
QUICK = TimingProtocol(warmup=1, min_repeats=3, max_repeats=3, max_seconds=5.0, memory=False)


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return load_space(SPACE)


def test_pipeline_rows_build_modules_of_their_shape(space) -> None:  # type: ignore[no-untyped-def]
    import torch

    parts = pipeline_parts(space)
    assert len(parts) == 3  # the text encoder and two decoders
    for spec in rows_for_space(space, "fp32"):
        if not spec.is_pipeline:
            continue
        built = build_row_module(spec, parts=parts)
        with torch.no_grad():
            out = built.module(*built.inputs)
        if spec.op == "text_encoder":
            assert tuple(out.shape) == (spec.batch, spec.height, spec.channels)
        else:  # chunk frames of 8x8 latents -> 32x32 RGB frames (a 4x decoder)
            assert tuple(out.shape) == (spec.batch * spec.frames, 3, 32, 32)


def test_a_pipeline_row_of_another_space_is_a_clear_error(space) -> None:  # type: ignore[no-untyped-def]
    spec = next(r for r in rows_for_space(space, "fp32") if r.op == "decoder")
    with pytest.raises(Exception, match="no pipeline model 'tiny_vae'"):
        build_row_module(spec, parts={})


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu-ort", "torch-cpu"])
def test_profile_measures_pipeline_rows(tmp_path: Path, space, device: str) -> None:  # type: ignore[no-untyped-def]
    rep = profile_space(space, get_device(device), tmp_path, protocol=QUICK, progress=False)
    assert not rep.failed, [rep.table.rows[k].reason for k in rep.failed]
    rows = [r for r in rep.table.rows.values() if r.spec.is_pipeline]
    assert len(rows) == 5
    for r in rows:
        assert r.source == "measured" and r.latency_ms_p50 and r.latency_ms_p50 > 0
        assert r.weight_bytes and r.weight_bytes > 0
    # the taesd decoder is smaller than the KL one in these tiny configs too
    w = {r.spec.params["model"]: r.weight_bytes for r in rows if r.spec.op == "decoder"}
    assert w["tiny_taesd"] < w["tiny_vae"]
    cm = CostModel(space, Table.load(tmp_path))
    for arch in list(enumerate_arches(space))[::97]:
        e = cm.evaluate(arch)
        assert e.latency_s_text > 0 and e.latency_s_decode > 0
        parts = e.latency_s_text + e.latency_s_unet + e.latency_s_decode
        assert math.isclose(e.latency_s_video, parts, rel_tol=1e-9)


@pytest.mark.slow
def test_validate_latency_of_the_whole_pipeline(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nas", "validate", "latency", "--device", "cpu-ort",
         "--space", str(SPACE), "--pipeline", "--samples", "3", "--out", str(tmp_path),
         "--geometry", "frames=4", "--geometry", "latent_height=8", "--geometry",
         "latent_width=8", "--quick", "--no-memory", "--no-progress"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "whole pipelines" in out.stdout
    rows = list(csv.DictReader((tmp_path / "validate_latency.csv").open()))
    assert len(rows) == 3
    for r in rows:
        # one pipeline per video: the text encoder, 2 steps of the UNet and the decoder
        assert float(r["measured_ms"]) > 0 and float(r["predicted_ms"]) > 0


def test_validate_pipeline_needs_a_pipeline(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nas", "validate", "latency", "--device", "cpu-ort",
         "--space", str(ROOT / "search_spaces" / "tiny.yaml"), "--pipeline", "--samples", "2",
         "--out", str(tmp_path), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2
    assert "has no pipeline: section with decoders" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
