"""nas generate and nas encode end to end on tiny models, and their one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, pipeline_space

from nas.cli import main
from nas.space import load_space, sample_arch

TINY = ROOT / "search_spaces" / "tiny.yaml"


def _arch(space_file: Path, out: Path, seed: int = 0) -> Path:
    space = load_space(space_file)
    return sample_arch(space, np.random.default_rng(seed)).save(out)


def _one_error(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    line = [e for e in err if not e.startswith("note:")]
    assert len(line) == 1 and line[0].startswith("error: "), err
    for n in needles:
        assert n in line[0], line[0]
    return line[0]


def _read_mp4(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _videos(folder: Path, n: int = 2) -> Path:
    """``n`` tiny clips (32x32, 6 frames) with captions beside them."""
    from nas.pipeline import write_mp4

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        frames = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
        write_mp4(folder / f"clip{i}.mp4", frames, 8)
        (folder / f"clip{i}.txt").write_text(f"a dog runs {'left' if i else 'right'}")
    return folder


def test_generate_untrained_procedural_space_writes_pixels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = _arch(TINY, tmp_path / "a.yaml")
    out = tmp_path / "sub" / "clip.mp4"
    rc = main(["generate", "--arch", str(arch), "--space", str(TINY), "--prompt",
               "3 moves left fast", "--out", str(out), "--scale", "2",
               "--no-progress"])  # fmt: skip
    o = capsys.readouterr().out
    assert rc == 0, o
    assert "text: toy" in o and "decoder: pixels" in o and "euler x2 steps" in o
    frames = _read_mp4(out)
    assert frames.shape == (4, 16, 16, 3)  # the tiny space's 4 frames of 8x8, upscaled x2
    png = (tmp_path / "sub" / "clip.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 100


def test_generate_with_a_local_clip_and_vae(
    tmp_path: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = pipeline_space(tmp_path, models)
    arch = _arch(space, tmp_path / "a.yaml")
    for dec, size in (("taesd", 32), ("vae/chunk4", 32), ("pixels", 8)):
        out = tmp_path / f"{dec.replace('/', '_')}.mp4"
        rc = main(["generate", "--arch", str(arch), "--space", str(space), "--prompt",
                   "a dog runs", "--out", str(out), "--decoder", dec, "--no-progress",
                   "--steps", "3", "--seed", "1"])  # fmt: skip
        o = capsys.readouterr().out
        assert rc == 0, o
        assert f"text: path:{models}/sd/text_encoder" in o and "euler x3 steps" in o
        assert f"decoder: {dec if '/' in dec or dec == 'pixels' else 'taesd/chunk1'}" in o
        assert _read_mp4(out).shape == (4, size, size, 3)
    # the same seed and prompt give the same video
    again = tmp_path / "again.mp4"
    main(["generate", "--arch", str(arch), "--space", str(space), "--prompt", "a dog runs",
          "--out", str(again), "--decoder", "taesd", "--no-progress", "--steps", "3",
          "--seed", "1"])  # fmt: skip
    assert np.array_equal(_read_mp4(again), _read_mp4(tmp_path / "taesd.mp4"))


def test_generate_bad_input_is_one_line(
    tmp_path: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = _arch(TINY, tmp_path / "a.yaml")
    base = ["generate", "--arch", str(arch), "--space", str(TINY), "--prompt", "x"]
    (tmp_path / "file").write_text("")
    rc = main([*base, "--out", str(tmp_path / "file" / "clip.mp4")])
    _one_error(capsys, rc, "--out", "writ")
    rc = main([*base, "--out", str(tmp_path / "clip.avi")])
    _one_error(capsys, rc, "--out", ".mp4")
    rc = main([*base, "--out", str(tmp_path / "c.mp4"), "--decoder", "vae"])
    _one_error(capsys, rc, "--decoder", "no pipeline decoders")
    rc = main([*base, "--out", str(tmp_path / "c.mp4"), "--checkpoint", str(tmp_path / "no")])
    _one_error(capsys, rc, "--checkpoint", "not found")
    rc = main([*base, "--out", str(tmp_path / "c.mp4"), "--device", "nonsense"])
    _one_error(capsys, rc, "--device 'nonsense': not a device")
    space = pipeline_space(tmp_path, models)
    parch = _arch(space, tmp_path / "p.yaml")
    rc = main(["generate", "--arch", str(parch), "--space", str(space), "--prompt", "x",
               "--out", str(tmp_path / "c.mp4"), "--decoder", "nope"])  # fmt: skip
    _one_error(capsys, rc, "--decoder 'nope' is not one of [pixels, vae, taesd]")


def _space_with(tmp_path: Path, models: Path, old: str, new: str) -> Path:
    p = pipeline_space(tmp_path, models)
    p.write_text(p.read_text().replace(old, new))
    return p


def test_bad_pipeline_folders_are_one_line_errors(
    tmp_path: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    arch = _arch(TINY, tmp_path / "a.yaml")
    empty = tmp_path / "empty"
    empty.mkdir()
    wide = tmp_path / "wide_clip"
    torch.manual_seed(0)
    CLIPTextModel(CLIPTextConfig(vocab_size=100, hidden_size=32, intermediate_size=32,
                                 num_hidden_layers=1, num_attention_heads=2, bos_token_id=0,
                                 eos_token_id=2, pad_token_id=1)).save_pretrained(wide)  # fmt: skip
    eight = tmp_path / "vae8"
    cfg = json.loads((models / "sd" / "vae" / "config.json").read_text())
    AutoencoderKL.from_config({**cfg, "latent_channels": 8}).save_pretrained(eight)
    capsys.readouterr()  # save_pretrained's progress bars
    cases = [
        (f"{models}/sd/text_encoder", str(empty), "pipeline.text_encoder.path", "no config.json"),
        (f"{models}/sd/vae", f"{models}/sd/text_encoder", "pipeline.decoders.vae.path",
         "not one of [AutoencoderKL, AutoencoderTiny]"),
        (f"{models}/sd/text_encoder", f"{models}/sd/vae", "pipeline.text_encoder.path",
         "not a CLIPTextModel"),
        (f"{models}/sd/text_encoder", str(wide), "config.hidden_size",
         "does not match the backbone's cross-attention width"),
        (f"{models}/sd/vae", str(eight), "config.latent_channels", "geometry.latent_channels"),
    ]  # fmt: skip
    for i, (old, new, where, what) in enumerate(cases):
        d = tmp_path / f"case{i}"
        d.mkdir()
        space = _space_with(d, models, old, new)
        rc = main(["generate", "--arch", str(arch), "--space", str(space), "--prompt", "x",
                   "--out", str(d / "c.mp4")])  # fmt: skip
        _one_error(capsys, rc, where, what)
    # nas encode names its own flag
    videos = _videos(tmp_path / "clips", 1)
    for vae, what in ((empty, "no config.json"), (eight, "config.latent_channels: 8")):
        rc = main(["encode", "--data", str(videos), "--vae", str(vae), "--space", str(TINY),
                   "--out", str(tmp_path / "lat")])  # fmt: skip
        _one_error(capsys, rc, f"--vae {vae}", what)


def test_encode_writes_latents_train_reads(
    tmp_path: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors import safe_open

    from nas.quality import LatentsFolder

    space_file = pipeline_space(tmp_path, models)
    videos = _videos(tmp_path / "clips")
    out = tmp_path / "latents"
    rc = main(["encode", "--data", str(videos), "--vae", str(models / "sd" / "vae"),
               "--space", str(space_file), "--out", str(out), "--no-progress"])  # fmt: skip
    o = capsys.readouterr().out
    assert rc == 0, o
    assert "wrote 2 latents files" in o and "from 32x32 frames" in o
    manifest = json.loads((out / "encode.json").read_text())
    assert manifest["vae"]["family"] == "autoencoder_kl" and manifest["videos"] == 2
    with safe_open(str(out / "clip1.safetensors"), framework="pt") as f:
        assert tuple(f.get_tensor("latents").shape) == (4, 4, 8, 8)
        assert tuple(f.get_tensor("text").shape) == (6, 16)
        assert f.metadata()["caption"] == "a dog runs left"
    ds = LatentsFolder(out, load_space(space_file).geometry)
    assert len(ds) == 2 and ds[0]["caption"] == "a dog runs right"
    # the space's taesd decoder by name: other latents
    rc = main(["encode", "--data", str(videos), "--vae", "taesd", "--space", str(space_file),
               "--out", str(tmp_path / "lat2"), "--no-progress"])  # fmt: skip
    assert rc == 0


@pytest.mark.slow
def test_encode_train_generate_end_to_end(
    tmp_path: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = pipeline_space(tmp_path, models)
    arch = _arch(space, tmp_path / "a.yaml")
    latents = tmp_path / "latents"
    assert main(["encode", "--data", str(_videos(tmp_path / "clips")), "--vae",
                 str(models / "sd" / "vae"), "--space", str(space), "--out", str(latents),
                 "--no-progress"]) == 0  # fmt: skip
    run = tmp_path / "run"
    rc = main(["train", "--arch", str(arch), "--space", str(space), "--data", str(latents),
               "--steps", "3", "--batch-size", "2", "--out", str(run),
               "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    out = tmp_path / "clip.mp4"
    rc = main(["generate", "--arch", str(arch), "--space", str(space), "--checkpoint", str(run),
               "--prompt", "a dog runs", "--out", str(out), "--no-progress"])  # fmt: skip
    o = capsys.readouterr().out
    assert rc == 0, o
    # trained on latents: the arch's decode choice and the CLIP text encoder
    decoder = yaml.safe_load(arch.read_text())["decoder"]
    assert f"decoder: {decoder}" in o
    assert "text: path:" in o
    assert _read_mp4(out).shape == (4, 32, 32, 3)
    assert "warning" not in capsys.readouterr().err or decoder.startswith("taesd")
    # the latents came from the KL VAE: decoding with TAESD says so
    rc = main(["generate", "--arch", str(arch), "--space", str(space), "--checkpoint", str(run),
               "--prompt", "x", "--out", str(out), "--decoder", "taesd",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    assert "warning: the training latents were encoded with path:" in capsys.readouterr().err
    # a checkpoint of another arch is refused
    other = _arch(space, tmp_path / "b.yaml", seed=5)
    rc = main(["generate", "--arch", str(other), "--space", str(space), "--checkpoint",
               str(run), "--prompt", "x", "--out", str(tmp_path / "o.mp4")])  # fmt: skip
    _one_error(capsys, rc, "--checkpoint", "trained for arch", "arch.yaml")


@pytest.mark.slow
def test_generate_from_a_procedural_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = _arch(TINY, tmp_path / "a.yaml")
    run = tmp_path / "run"
    rc = main(["train", "--arch", str(arch), "--space", str(TINY), "--steps", "2",
               "--batch-size", "2", "--out", str(run), "--no-progress"])  # fmt: skip
    assert rc == 0
    capsys.readouterr()
    out = tmp_path / "clip.mp4"
    rc = main(["generate", "--arch", str(arch), "--space", str(TINY), "--checkpoint",
               str(run / "checkpoints"  / "step_0000002"), "--prompt", "3 moves left fast",
               "--out", str(out), "--guidance", "2", "--no-progress"])  # fmt: skip
    o = capsys.readouterr().out
    assert rc == 0, o
    assert "text: toy" in o and "decoder: pixels" in o and "guidance 2" in o
    assert _read_mp4(out).shape == (4, 8, 8, 3)
    shutil.rmtree(run)


def test_a_few_step_student_samples_its_own_steps_without_guidance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from nas.model import build_video_unet

    arch_file = _arch(TINY, tmp_path / "a.yaml")
    calls: list[int] = []

    def fake_load(space_, arch, checkpoint):  # type: ignore[no-untyped-def]
        model = build_video_unet(space_, arch).eval()
        forward = model.forward

        def counted(*a: torch.Tensor) -> torch.Tensor:
            calls.append(a[0].shape[0])
            return forward(*a)

        model.forward = counted  # type: ignore[method-assign]
        return model, {"stage": "adversarial", "few_steps": 3, "data": "procedural"}

    monkeypatch.setattr("nas.pipeline._generate._load_unet", fake_load)
    base = ["generate", "--arch", str(arch_file), "--space", str(TINY), "--prompt", "x",
            "--checkpoint", str(tmp_path), "--no-progress"]  # fmt: skip
    rc = main([*base, "--out", str(tmp_path / "a.mp4")])
    o = capsys.readouterr().out
    assert rc == 0 and "few-step euler x3 steps" in o, o
    assert calls == [1, 1, 1]  # one UNet call per step, no doubled batch
    rc = main([*base, "--out", str(tmp_path / "b.mp4"), "--guidance", "3"])
    _one_error(capsys, rc, "--guidance", "baked in")


@pytest.mark.parametrize(("hidden", "extra"), [("transformers", "pipeline"), ("av", "video")])
def test_generate_without_its_extra_is_one_line(
    hidden: str,
    extra: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    space = ROOT / "search_spaces" / "tiny-pipeline.yaml"
    arch = _arch(space, tmp_path / "a.yaml")
    monkeypatch.setitem(sys.modules, hidden, None)
    rc = main(["generate", "--arch", str(arch), "--space", str(space), "--prompt", "x",
               "--out", str(tmp_path / "c.mp4"), "--no-progress"])  # fmt: skip
    line = _one_error(capsys, rc, f"needs {hidden}", f"pip install 'nas-video[{extra}]'")
    assert not (tmp_path / "c.mp4").exists(), line


def test_encode_out_must_be_writable(
    tmp_path: Path, models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    rc = main(["encode", "--data", str(_videos(tmp_path / "clips", 1)), "--vae",
               str(models / "sd" / "vae"), "--space", str(TINY), "--out",
               str(tmp_path / "file" / "lat")])  # fmt: skip
    _one_error(capsys, rc, "--out", "writable folder")
    rc = main(["encode", "--data", str(tmp_path / "none"), "--vae", str(models / "sd" / "vae"),
               "--space", str(TINY), "--out", str(tmp_path / "lat")])  # fmt: skip
    _one_error(capsys, rc, "video folder not found")


@pytest.mark.slow
def test_generate_from_a_real_few_step_student(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nas.quality import TrainConfig, train
    from nas.space import load_arch

    arch_file = _arch(TINY, tmp_path / "a.yaml")
    space = load_space(TINY)
    arch = load_arch(space, arch_file)
    train(space, arch, TrainConfig(steps=2, batch_size=2), tmp_path / "teacher", progress=False)
    config = TrainConfig(
        steps=2, batch_size=2, stage="adversarial", teacher=str(tmp_path / "teacher"), few_steps=2
    )
    train(space, arch, config, tmp_path / "student", progress=False)
    out = tmp_path / "clip.mp4"
    rc = main(["generate", "--arch", str(arch_file), "--space", str(TINY), "--checkpoint",
               str(tmp_path / "student"), "--prompt", "3 moves left fast", "--out", str(out),
               "--no-progress"])  # fmt: skip
    o = capsys.readouterr().out
    assert rc == 0, o
    assert "few-step euler x2 steps" in o and "decoder: pixels" in o
    assert _read_mp4(out).shape == (4, 8, 8, 3)
