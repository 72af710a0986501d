"""nas export --pipeline: text encoder, UNet and decoders, each checked against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, pipeline_space

from nas.cli import main
from nas.pipeline import build_decoder, build_text_encoder
from nas.space import load_space, sample_arch

TINY = ROOT / "search_spaces" / "tiny.yaml"


def test_export_pipeline_onnx_runs_like_pytorch(
    tmp_path: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnxruntime as ort

    space_file = pipeline_space(tmp_path, models)
    space = load_space(space_file)
    arch = sample_arch(space, np.random.default_rng(0))
    arch_file = arch.save(tmp_path / "a.yaml")
    out = tmp_path / "exp"
    rc = main(["export", "--pipeline", "--arch", str(arch_file), "--space", str(space_file),
               "--format", "onnx", "--out", str(out)])  # fmt: skip
    o = capsys.readouterr().out
    assert rc == 0, o
    dec = arch.decoder.split("/")[0]
    for name in ("text_encoder", "unet", f"decoder_{dec}"):
        assert f"{name}: wrote {out / name}.onnx" in o
        assert (out / f"{name}.onnx").is_file()
    assert o.count("max abs error") == 3
    manifest = json.loads((out / "pipeline.json").read_text())
    assert list(manifest["decoders"]) == [dec]
    assert manifest["decoders"][dec]["chunk"] == int(arch.decoder.split("chunk")[1])
    assert manifest["unet"]["steps"] == space.geometry.steps
    # the files hold the folders' weights: ONNX Runtime agrees with modules built from them
    ids = torch.tensor([[0, 7, 9, 2, 1, 1], [0, 3, 2, 1, 1, 1]])
    sess = ort.InferenceSession(str(out / "text_encoder.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = build_text_encoder(space.pipeline.text_encoder)(ids).numpy()
    np.testing.assert_allclose(sess.run(None, {"input_ids": ids.numpy()})[0], want, atol=1e-4)
    z = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    sess = ort.InferenceSession(
        str(out / f"decoder_{dec}.onnx"), providers=["CPUExecutionProvider"]
    )
    with torch.no_grad():
        want = build_decoder(space.pipeline.decoder(dec))(z).numpy()
    np.testing.assert_allclose(sess.run(None, {"latents": z.numpy()})[0], want, atol=1e-4)


def test_export_pipeline_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = sample_arch(load_space(TINY), np.random.default_rng(0)).save(tmp_path / "a.yaml")
    rc = main(["export", "--pipeline", "--arch", str(arch), "--space", str(TINY), "--format",
               "onnx", "--out", str(tmp_path / "x")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "has no pipeline: section" in err[0], err
    pipe = ROOT / "search_spaces" / "tiny-pipeline.yaml"
    parch = sample_arch(load_space(pipe), np.random.default_rng(0)).save(tmp_path / "p.yaml")
    (tmp_path / "file").write_text("")
    rc = main(["export", "--pipeline", "--arch", str(parch), "--space", str(pipe), "--format",
               "onnx", "--out", str(tmp_path / "file" / "x")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--out" in err[0] and "writable" in err[0], err
    rc = main(["export", "--pipeline", "--arch", str(parch), "--space", str(pipe), "--format",
               "onnx", "--out", str(tmp_path / "y"), "--decoder", "nope"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "--decoder 'nope' is not one of [vae, taesd]" in err[-1], err


@pytest.mark.slow
def test_export_pipeline_coreml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipe = ROOT / "search_spaces" / "tiny-pipeline.yaml"
    parch = sample_arch(load_space(pipe), np.random.default_rng(0)).save(tmp_path / "p.yaml")
    rc = main(["export", "--pipeline", "--arch", str(parch), "--space", str(pipe), "--format",
               "coreml", "--decoder", "taesd"])  # fmt: skip
    o = capsys.readouterr()
    assert rc == 0, o.err
    out = tmp_path / "p-pipeline"  # the default: beside the arch file
    for name in ("text_encoder", "unet", "decoder_taesd"):
        assert (out / f"{name}.mlpackage").is_dir(), o.out
    manifest = json.loads((out / "pipeline.json").read_text())
    assert manifest["text_encoder"]["input"]["dtype"] == "int32"
    assert "Failed to load" not in o.err  # coremltools' import chatter is held back
