"""Tiny pipeline models saved locally with save_pretrained (no hub): a CLIP text encoder with
tokenizer files, an AutoencoderKL and an AutoencoderTiny, and spaces that point at them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "nas" / "_data" / "pipeline"


def _bundled(name: str) -> dict:  # type: ignore[type-arg]
    cfg = json.loads((DATA / f"{name}.json").read_text())
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def write_clip_tokenizer(folder: Path) -> None:
    """vocab.json + merges.txt of a byte-level BPE with no merges (one token per character)."""
    # GPT-2's byte -> printable character table, which CLIP's BPE vocabularies use
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in printable]
    table = {b: chr(b) for b in printable} | {b: chr(256 + i) for i, b in enumerate(extra)}
    chars = [table[b] for b in range(256)]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sd/text_encoder`` (CLIPTextModel, width 16), ``sd/tokenizer``, ``sd/vae``
    (AutoencoderKL, 4x) and ``taesd`` (AutoencoderTiny, 4x), seeded random weights."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny
    from transformers import CLIPTextConfig, CLIPTextModel

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    clip_cfg = {k: v for k, v in _bundled("tiny_clip").items() if k not in ("architectures",)}
    clip_cfg["vocab_size"] = 520  # the tokenizer's 514 tokens fit
    clip_cfg.pop("model_type", None)
    CLIPTextModel(CLIPTextConfig(**clip_cfg)).save_pretrained(root / "sd" / "text_encoder")
    write_clip_tokenizer(root / "sd" / "tokenizer")
    AutoencoderKL.from_config(_bundled("tiny_vae")).save_pretrained(root / "sd" / "vae")
    AutoencoderTiny.from_config(_bundled("tiny_taesd")).save_pretrained(root / "taesd")
    return root


def pipeline_space(tmp_path: Path, models: Path, *, text_length: int = 6) -> Path:
    """The tiny space with the local models as its pipeline (decoders vae and taesd)."""
    text = (ROOT / "search_spaces" / "tiny-pipeline.yaml").read_text()
    text = text.replace("name: tiny-pipeline", "name: tiny-local")
    clip = f"text_encoder: {{path: {models}/sd/text_encoder}}"
    text = text.replace("text_encoder: {ref: tiny_clip}", clip)
    text = text.replace("vae: {ref: tiny_vae}", f"vae: {{path: {models}/sd/vae}}")
    text = text.replace("taesd: {ref: tiny_taesd}", f"taesd: {{path: {models}/taesd}}")
    text = text.replace("text_length: 6", f"text_length: {text_length}")
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p
