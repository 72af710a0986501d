"""The pipeline's models built from local folders: weights, tokenizer, encoder and decoders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import pipeline_space

from nas.pipeline import (
    build_decoder,
    build_encoder,
    build_text_encoder,
    build_tokenizer,
    decode_video,
)
from nas.space import load_space


@pytest.fixture()
def space(tmp_path: Path, models: Path):  # type: ignore[no-untyped-def]
    return load_space(pipeline_space(tmp_path, models))


def test_text_encoder_loads_the_folder_weights(space, models: Path) -> None:  # type: ignore[no-untyped-def]
    from transformers import CLIPTextModel

    part = space.pipeline.text_encoder
    assert part.weights and part.weights.endswith("model.safetensors")
    ours = build_text_encoder(part)
    ref = CLIPTextModel.from_pretrained(models / "sd" / "text_encoder").eval()
    ids = torch.tensor([[0, 5, 9, 2, 1, 1]])
    with torch.no_grad():
        want = ref(input_ids=ids).last_hidden_state
        got = ours(ids)
    assert got.shape == (1, 6, 16)
    torch.testing.assert_close(got, want)
    # without weights: random (another output)
    with torch.no_grad():
        other = build_text_encoder(part, load_weights=False)(ids)
    assert not torch.allclose(other, want)


def test_tokenizer_from_the_sibling_folder_and_the_fallback(space) -> None:  # type: ignore[no-untyped-def]
    tok = build_tokenizer(space.pipeline.text_encoder)
    assert tok.kind == "clip"
    ids = tok(["a dog runs", "x"], 6)
    assert ids.shape == (2, 6) and ids.dtype == torch.int64
    assert int(ids[0, 0]) == 512  # <|startoftext|> of the tiny vocabulary
    bundled = load_space("search_spaces/tiny-pipeline.yaml").pipeline.text_encoder
    fb = build_tokenizer(bundled)
    assert fb.kind == "fallback"
    a, b = fb(["a dog runs"], 6), fb(["a dog runs"], 6)
    assert torch.equal(a, b) and int(a[0, 0]) == 0 and 2 in a[0].tolist()
    assert not torch.equal(a, fb(["a cat runs"], 6))
    assert int(fb(["w " * 50], 6)[0, -1]) == 2  # cut, still ends with EOS


@pytest.mark.parametrize("name", ["vae", "taesd"])
def test_decoder_and_encoder_match_diffusers(space, models: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    from diffusers import AutoencoderKL, AutoencoderTiny

    part = space.pipeline.decoder(name)
    folder = models / "sd" / "vae" if name == "vae" else models / "taesd"
    cls = AutoencoderKL if name == "vae" else AutoencoderTiny
    ref = cls.from_pretrained(folder).eval()
    dec, enc = build_decoder(part), build_encoder(part)
    z = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    scale = part.config["scaling_factor"]
    with torch.no_grad():
        frames = dec(z)
        want = ref.decode(z / scale).sample
        x = frames.clamp(-1, 1)
        lat = enc(x)
        if name == "vae":
            want_lat = ref.encode(x).latent_dist.mean * scale
        else:
            want_lat = ref.encode(x).latents
    assert frames.shape == (3, 3, 32, 32)
    torch.testing.assert_close(frames, want)
    torch.testing.assert_close(lat, want_lat)


def test_decode_video_in_chunks_equals_frame_by_frame(space) -> None:  # type: ignore[no-untyped-def]
    dec = build_decoder(space.pipeline.decoder("taesd"))
    z = torch.randn(2, 4, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        one = decode_video(dec, z, 1)
        four = decode_video(dec, z, 4)
        direct = dec(z[1, :, 2][None])[0]
    assert one.shape == (2, 3, 4, 32, 32)
    torch.testing.assert_close(one, four)
    torch.testing.assert_close(one[1, :, 2], direct)
