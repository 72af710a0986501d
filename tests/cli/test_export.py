"""nas export: ONNX checked against PyTorch, Core ML converted and inspected, checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.errors import NasError
from nas.export import export_arch
from nas.model import build_video_unet
from nas.space import load_space, sample_arch


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return load_space("search_spaces/tiny.yaml")


def test_onnx_export_matches_torch(space, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    arch = sample_arch(space, np.random.default_rng(0))
    rep = export_arch(space, arch, tmp_path / "a.onnx", "onnx")
    assert rep.path.is_file() and rep.max_abs_error is not None and rep.max_abs_error < 1e-4
    assert rep.inputs["sample"] == [1, 4, 4, 8, 8]
    assert rep.weight_bytes is not None and rep.weight_bytes >= 4 * 249_268


def _example_inputs(space, batch: int, frames: int | None = None) -> tuple[torch.Tensor, ...]:  # type: ignore[no-untyped-def]
    """(sample, timestep, text) for ``batch`` videos of ``frames`` (default: the space's)."""
    g = space.geometry
    t = frames or g.frames
    gen = torch.Generator().manual_seed(1)
    return (
        torch.randn(batch, g.latent_channels, t, g.latent_height, g.latent_width, generator=gen),
        torch.full((batch,), 500, dtype=torch.int64),
        torch.randn(batch, g.text_length, g.text_dim, generator=gen),
    )


def _feeds(x: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
    return {n: v.numpy() for n, v in zip(("sample", "timestep", "text"), x, strict=True)}


def test_onnx_takes_any_batch_and_up_to_the_space_frames(space, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    arch = next(  # an arch with a positional table, the part that fixed the frames before
        a
        for a in (sample_arch(space, np.random.default_rng(s)) for s in range(50))
        if any("attn" in c.op for _, c in a.choices)
    )
    from safetensors.torch import save_file

    model = build_video_unet(space, arch).eval()
    for p in model.parameters():  # temporal ops start at identity; make them matter
        torch.nn.init.normal_(p, std=0.05)
    ckpt = tmp_path / "c.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    rep = export_arch(space, arch, tmp_path / "d.onnx", "onnx", checkpoint=ckpt)
    assert rep.dynamic == {"batch": "any", "frames": "1..4"}
    assert [c["sample"] for c in rep.checked] == [[1, 4, 4, 8, 8], [2, 4, 2, 8, 8]]
    sess = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    for batch, frames in [(3, 4), (2, 1), (1, 3)]:
        x = _example_inputs(space, batch, frames)
        got = sess.run(None, _feeds(x))
        with torch.no_grad():
            want = model(*x).numpy()
        assert got[0].shape == (batch, 4, frames, 8, 8)
        assert np.abs(got[0] - want).max() < 1e-4
    too_many = _example_inputs(space, 1, 5)  # the positional tables hold 4 frames
    with pytest.raises(Exception):  # noqa: B017 - ORT raises its own error types
        sess.run(None, _feeds(too_many))
    fixed = export_arch(space, arch, tmp_path / "s.onnx", "onnx", dynamic=False)
    assert fixed.dynamic == {} and len(fixed.checked) == 1
    static = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    two = _example_inputs(space, 2)
    with pytest.raises(Exception):  # noqa: B017
        static.run(None, _feeds(two))


def test_onnx_export_prints_its_report_and_nothing_else(  # type: ignore[no-untyped-def]
    space, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from nas.cli import main

    sample_arch(space, np.random.default_rng(3)).save(tmp_path / "a.yaml")
    args = ["export", "--arch", str(tmp_path / "a.yaml"), "--format", "onnx"]
    assert main(args) == 0
    out, err = capfd.readouterr()  # file descriptors too: ONNX Runtime writes past Python
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith("wrote ") and lines[1].startswith("dynamic axes: batch any")
    assert all(
        ln.startswith(("wrote", "dynamic", "ONNX Runtime", "weights", "ops", "note"))
        for ln in lines
    )
    assert len([ln for ln in lines if ln.startswith("note: ")]) <= 1
    assert main([*args, "--verbose", "--out", str(tmp_path / "b.onnx")]) == 0
    assert capfd.readouterr().err == ""


def test_checkpoint_weights_are_exported_and_mismatches_refused(space, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from safetensors.torch import save_file

    arch = sample_arch(space, np.random.default_rng(1))
    model = build_video_unet(space, arch)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    ckpt = tmp_path / "c.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    a = export_arch(space, arch, tmp_path / "a.onnx", "onnx")
    b = export_arch(space, arch, tmp_path / "b.onnx", "onnx", checkpoint=ckpt)
    assert a.max_abs_error is not None and b.max_abs_error is not None
    assert (tmp_path / "a.onnx").read_bytes() != (tmp_path / "b.onnx").read_bytes()
    other = sample_arch(space, np.random.default_rng(7))
    assert other != arch
    with pytest.raises(NasError, match="does not match this arch"):
        export_arch(space, other, tmp_path / "c.onnx", "onnx", checkpoint=ckpt)
    with pytest.raises(NasError, match="checkpoint not found"):
        export_arch(space, arch, tmp_path / "d.onnx", "onnx", checkpoint=tmp_path / "nope")


@pytest.mark.slow
def test_coreml_export_via_the_cli(space, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    arch = sample_arch(space, np.random.default_rng(2))
    arch.save(tmp_path / "a.yaml")  # names the bundled 'tiny' space: no --space needed
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "nas",
            "export",
            "--arch",
            str(tmp_path / "a.yaml"),
            "--format",
            "coreml",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.mlpackage").is_dir()
    assert "ops: const" in out.stdout and "weights:" in out.stdout
    # coremltools' warnings, log lines and progress bars are held back: one note says what
    # matters in them (this torch is untested by coremltools; no Core ML runtime on Linux)
    assert out.stderr == "", out.stderr
    (note,) = [ln for ln in out.stdout.splitlines() if ln.startswith("note: ")]
    assert "third-party messages held back" in note and "--verbose" in note
    if sys.platform != "darwin":
        assert "no Core ML runtime here" in note
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["held_back"] and all("\n" not in m for m in report["held_back"])
